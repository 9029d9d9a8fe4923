# message: headeronly.eml
require ["body", "fileinto"];
if body :contains "" { fileinto "empty-matches-empty"; }
if body :is "" { fileinto "is-empty"; }
if body :raw :matches "*" { fileinto "raw-star"; }
if size :under 200 { fileinto "small"; }
