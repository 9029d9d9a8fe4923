require ["include", "fileinto"];
include :global "spam";
fileinto "Work";
