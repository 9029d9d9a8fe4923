# message: spam.eml
require "reject";
if header :contains "x-spam" "yes" {
  reject text:
Your message looks like spam.
Please contact the postmaster.
.
;
}
