# message: spam.eml
require ["spamtest", "relational", "comparator-i;ascii-numeric", "fileinto"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "7" { fileinto "ge-7"; }
if spamtest :value "eq" :comparator "i;ascii-numeric" "7" { fileinto "eq-7"; }
if spamtest :is "0" { fileinto "untested"; }
