# message: forwarded.eml
require ["body", "fileinto"];
if body :text :contains "ready for signature" { fileinto "nested-text"; }
if body :content "message/rfc822" :contains "Contract draft" { fileinto "rfc822-part"; }
if body :content "text/plain" :contains "ready for signature" { fileinto "nested-plain"; }
if body :raw :contains "legal@firm.example" { fileinto "raw-nested"; }
if header :contains "subject" "Contract draft" { fileinto "inner-subject-as-header"; }
