# message: urgent.eml
# Values that do not start with a digit are positive infinity for i;ascii-numeric.
require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "gt" :comparator "i;ascii-numeric" "subject" "999999" { fileinto "text-is-infinite"; }
if header :value "eq" :comparator "i;ascii-numeric" "importance" "high" { fileinto "both-infinite-equal"; }
if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "01" { fileinto "wrong"; }
if header :value "eq" :comparator "i;ascii-numeric" "x-priority" "0001" { fileinto "leading-zeros"; }
