# message: list.eml
require ["date", "fileinto"];
if date :matches "x-no-date" "year" "*" { fileinto "missing"; }
if date :matches "subject" "year" "*" { fileinto "not-a-date"; }
if date :is :originalzone "date" "zone" "-0500" { fileinto "zone-minus5"; }
