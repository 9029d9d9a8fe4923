# message: numbers.eml
# :count compares the count as a string with the default comparator: "3" > "10".
require ["relational", "fileinto"];
if header :count "gt" "x-count" "10" { fileinto "string-count-gt"; }
if header :count "eq" "x-count" "3" { fileinto "string-count-eq"; }
