# message: spam.eml
require ["include", "fileinto"];
include :once :global "spam";
include :once :personal "counter";
