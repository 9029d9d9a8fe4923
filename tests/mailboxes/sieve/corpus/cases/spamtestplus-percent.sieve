# message: spam.eml
require ["spamtestplus", "relational", "comparator-i;ascii-numeric", "fileinto", "variables"];
if spamtest :percent :value "ge" :comparator "i;ascii-numeric" "70" { fileinto "ge-70"; }
if spamtest :percent :matches "*" { fileinto "pct-${1}"; }
