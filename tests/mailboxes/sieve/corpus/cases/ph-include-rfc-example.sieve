# message: spam.eml
# The RFC 6609 3.2 example (Pigeonhole tests/extensions/include/rfc.svtest), rewritten.
require ["include"];
include :personal "always_allow";
include :global "spam";
include :personal "mailing_lists";
