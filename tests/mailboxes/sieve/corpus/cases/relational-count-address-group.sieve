# message: spam.eml
require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if address :count "eq" :comparator "i;ascii-numeric" "to" "0" { fileinto "zero"; }
if address :count "eq" :comparator "i;ascii-numeric" "to" "1" { fileinto "one"; }
