# message: spam.eml
require ["body", "fileinto"];
if body :text :contains "PRIZE" { fileinto "prize"; }
if body :text :contains "<p>" { fileinto "markup-kept"; }
