require ["copy", "fileinto"];
fileinto :copy "Work";
fileinto "Work";
