# to: alice+@example.org
require ["subaddress", "envelope", "fileinto"];
if envelope :detail "to" "" { fileinto "empty-detail"; }
if envelope :user "to" "alice" { fileinto "user"; }
