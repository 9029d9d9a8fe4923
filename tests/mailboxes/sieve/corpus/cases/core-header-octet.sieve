# The i;octet comparator is case-sensitive.
require "fileinto";
if header :comparator "i;octet" :contains "subject" "project" { fileinto "lower-yes"; } else { fileinto "lower-no"; }
if header :comparator "i;octet" :contains "subject" "Project" { fileinto "upper-yes"; } else { fileinto "upper-no"; }
if header :comparator "i;ascii-casemap" :is "from" "BOB SENDER <BOB@REMOTE.EXAMPLE>" { fileinto "casemap-yes"; }
