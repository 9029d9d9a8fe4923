# message: tricky.eml
# Ideas from Pigeonhole tests/match-types/contains.svtest and is.svtest.
require "fileinto";
if header :contains "x-upper" "shout" { fileinto "casemap-contains"; }
if header :comparator "i;octet" :contains "x-upper" "shout" { fileinto "octet-contains"; }
if header :is "x-upper" "shouting" { fileinto "casemap-is"; }
if header :comparator "i;octet" :is "x-upper" "SHOUTING" { fileinto "octet-is"; }
if header :contains "subject" "[fwd]" { fileinto "brackets"; }
if address :contains :domain "cc" "OPS" { fileinto "cc-domain-contains"; }
