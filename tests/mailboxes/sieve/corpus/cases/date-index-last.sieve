# message: plain.eml
require ["date", "index", "variables", "fileinto"];
if date :index 1 :last :matches "received" "date" "*" { fileinto "oldest-${1}"; }
