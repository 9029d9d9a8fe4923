require ["include", "fileinto"];
include "broken";
fileinto "Work";
