# message: spam.eml
require ["include", "fileinto"];
include :global "spam";
fileinto "not-reached";
