require ["variables", "fileinto"];
set "folder" "Work";
set "sub" "2026";
fileinto "${folder}";
fileinto "Archive/${sub}";
fileinto "${undefined}x";
