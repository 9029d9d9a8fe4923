# message: multipart.eml
# body :content "" matches every part (RFC 5173 5.2: "" is any type).
require ["body", "fileinto"];
if body :content "" :contains "JVBERi0" { fileinto "any-type-b64"; }
if body :content "" :contains "Hello Alice" { fileinto "any-type-text"; }
