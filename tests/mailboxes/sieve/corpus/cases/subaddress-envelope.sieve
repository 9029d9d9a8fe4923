# to: alice+lists@example.org
require ["subaddress", "envelope", "fileinto", "variables"];
if envelope :user "to" "alice" { fileinto "user"; }
if envelope :detail "to" "lists" { fileinto "detail"; }
if envelope :matches :detail "to" "*" { fileinto "Lists/${1}"; }
