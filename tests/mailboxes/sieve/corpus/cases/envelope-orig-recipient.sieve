# to: alice+work@example.org
# orig-to: alice@example.org
require ["envelope", "subaddress", "fileinto", "variables"];
if envelope :matches "to" "*" { fileinto "to-${1}"; }
