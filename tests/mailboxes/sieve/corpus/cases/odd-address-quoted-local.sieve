# message: odd.eml
require ["fileinto", "variables"];
if address :is :localpart "from" "john doe" { fileinto "unquoted-local"; }
if address :matches :all "from" "*" { fileinto "all-${1}"; }
if address :is :domain "from" "quoted.example" { fileinto "domain"; }
