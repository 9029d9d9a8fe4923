# stop in an included script ends the whole run.
require ["include", "fileinto"];
include :global "stop-here";
fileinto "not-reached";
