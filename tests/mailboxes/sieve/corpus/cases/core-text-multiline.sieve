# A multi-line string with dot-stuffing, as the folder name.
require "fileinto";
if header :contains "subject" text:
meeting
.
{
  fileinto text:
Work
.
;
}
