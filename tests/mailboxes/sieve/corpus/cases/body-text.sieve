# message: multipart.eml
require ["body", "fileinto"];
if body :text :contains "photos from the trip" { fileinto "text-yes"; }
if body :text :contains "JVBERi0" { fileinto "text-attachment"; }
if body :text :contains "Content-Type" { fileinto "text-headers"; }
