# The first time a message is seen it is not a duplicate.
require ["duplicate", "fileinto"];
if duplicate { discard; stop; }
fileinto "Work";
