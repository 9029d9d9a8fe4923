require ["include", "variables", "fileinto"];
global "count";
set "count" "start";
include "counter";
fileinto "final-${count}";
