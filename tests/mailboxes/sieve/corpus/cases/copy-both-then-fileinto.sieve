require ["copy", "fileinto"];
redirect :copy "alice@forward.example";
fileinto :copy "Archive";
fileinto "Work";
