require ["environment", "fileinto"];
if environment :is "domain" "" { fileinto "no-domain"; }
if environment :matches "name" "*" { fileinto "has-name"; }
