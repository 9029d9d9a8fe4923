# message: odd.eml
require ["date", "variables", "fileinto"];
if date :matches :zone "+0000" "date" "iso8601" "*" { fileinto "iso-${1}"; }
if date :matches :originalzone "date" "zone" "*" { fileinto "zone-${1}"; }
