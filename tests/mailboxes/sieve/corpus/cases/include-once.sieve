require ["include", "variables", "fileinto"];
global "count";
include :once "counter";
include :once "counter";
fileinto "final-${count}";
