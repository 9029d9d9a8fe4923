require ["include", "variables", "fileinto"];
global "count";
include "counter";
include "counter";
fileinto "final-${count}";
