require ["include", "variables", "fileinto"];
global "count";
set "count" "${count}x";
fileinto "count-${count}";
