require ["date", "relational", "fileinto"];
if currentdate :value "ge" "year" "2020" { fileinto "recent"; }
if currentdate :value "lt" "year" "2020" { fileinto "old"; }
if currentdate :matches "zone" "*" { fileinto "has-zone"; }
