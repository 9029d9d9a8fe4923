# Ideas from Pigeonhole tests/extensions/date/zones.svtest.
require ["date", "variables", "fileinto"];
if date :matches :zone "+0530" "date" "time" "*" { fileinto "ist-${1}"; }
if date :matches :zone "-1100" "date" "date" "*" { fileinto "sst-${1}"; }
if date :matches :zone "+1400" "date" "date" "*" { fileinto "lint-${1}"; }
if date :matches :originalzone "date" "zone" "*" { fileinto "orig-${1}"; }
