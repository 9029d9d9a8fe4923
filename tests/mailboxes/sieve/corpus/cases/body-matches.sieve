require ["body", "fileinto"];
if body :matches "*room ?*" { fileinto "matches"; }
if body :is "Bob" { fileinto "is-whole"; }
