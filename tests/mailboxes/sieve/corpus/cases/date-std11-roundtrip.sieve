# message: encoded.eml
require ["date", "variables", "fileinto"];
if date :matches "date" "std11" "*" { fileinto "std11-${1}"; }
if date :matches :zone "+0000" "date" "std11" "*" { fileinto "utc-${1}"; }
