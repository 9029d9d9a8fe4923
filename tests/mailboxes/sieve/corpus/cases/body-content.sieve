# message: multipart.eml
require ["body", "fileinto"];
if body :content "text/plain" :contains "signed contract. The confidential" { fileinto "plain-decoded"; }
if body :content "text/html" :contains "<b>photos</b>" { fileinto "html-part"; }
if body :content "text" :contains "photos" { fileinto "text-any"; }
if body :content "application/pdf" :contains "%PDF" { fileinto "pdf-decoded"; }
if body :content "image" :contains "" { fileinto "image"; }
if body :content "multipart" :contains "multi-part message" { fileinto "multipart-prologue"; }
