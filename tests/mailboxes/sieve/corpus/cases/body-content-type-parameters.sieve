# message: multipart.eml
require ["body", "fileinto"];
if body :content "text/plain; charset=utf-8" :contains "photos" { fileinto "with-parameters"; }
