# return in the main script ends it like stop.
require ["include", "fileinto"];
fileinto "Work";
return;
fileinto "not-reached";
