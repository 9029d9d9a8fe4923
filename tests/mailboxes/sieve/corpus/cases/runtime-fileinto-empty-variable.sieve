require ["variables", "fileinto"];
fileinto "${nothing}";
