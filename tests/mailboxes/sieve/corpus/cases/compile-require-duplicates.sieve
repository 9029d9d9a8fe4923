require ["fileinto", "fileinto", "FILEINTO"];
fileinto "Work";
