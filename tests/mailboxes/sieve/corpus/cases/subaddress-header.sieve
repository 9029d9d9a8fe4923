require ["subaddress", "fileinto"];
if address :detail "cc" "work" { fileinto "cc-detail"; }
if address :user "cc" "dave" { fileinto "cc-user"; }
if address :detail "from" "" { fileinto "wrong-empty"; }
if address :matches :detail "from" "*" { fileinto "wrong-any"; }
