# message: list.eml
require ["include"];
include :personal "always_allow";
include :global "spam";
include :personal "mailing_lists";
