require ["body", "fileinto"];
if body :contains "quarterly report" { fileinto "body-yes"; }
if body :contains "QUARTERLY" { fileinto "body-case"; }
if body :contains "Subject" { fileinto "body-has-header"; }
