require ["include", "fileinto"];
include "no-such-script";
fileinto "Work";
