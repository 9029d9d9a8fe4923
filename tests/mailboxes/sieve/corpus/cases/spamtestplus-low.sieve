# message: virus.eml
require ["spamtestplus", "relational", "comparator-i;ascii-numeric", "fileinto", "variables"];
if spamtest :percent :matches "*" { fileinto "pct-${1}"; }
if spamtest :matches "*" { fileinto "value-${1}"; }
if spamtest :percent :value "lt" :comparator "i;ascii-numeric" "50" { fileinto "below-half"; }
