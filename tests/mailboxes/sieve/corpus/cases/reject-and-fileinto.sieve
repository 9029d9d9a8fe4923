# reject conflicts with fileinto: an error at run time.
require ["reject", "fileinto"];
fileinto "Work";
reject "no";
