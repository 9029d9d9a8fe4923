# message: urgent.eml
require ["include", "imap4flags"];
include "flag-urgent";
