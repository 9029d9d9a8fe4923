require ["include", "fileinto"];
include "loop";
fileinto "Work";
