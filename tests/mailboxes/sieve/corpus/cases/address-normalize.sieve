# message: encoded.eml
require ["fileinto"];
if address :is "to" "andre@example.org" { fileinto "first-to"; }
if address :is :localpart "to" "alice" { fileinto "second-to"; }
if address :is :domain "to" "EXAMPLE.ORG" { fileinto "domain-case"; }
