require ["include", "fileinto"];
include :optional "no-such-script";
fileinto "Work";
