# message: numbers.eml
require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "eq" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "leading-space-3"; }
if header :value "eq" :comparator "i;ascii-numeric" "x-negative" "5" { fileinto "minus-ignored"; }
if header :value "eq" :comparator "i;ascii-numeric" "x-decimal" "2" { fileinto "decimal-prefix"; }
if header :value "gt" :comparator "i;ascii-numeric" "x-empty" "999" { fileinto "empty-infinite"; }
