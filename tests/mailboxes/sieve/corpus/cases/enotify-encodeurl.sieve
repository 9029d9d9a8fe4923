require ["enotify", "variables", "fileinto"];
set :encodeurl "e" "Project & meeting?";
fileinto "e-${e}";
