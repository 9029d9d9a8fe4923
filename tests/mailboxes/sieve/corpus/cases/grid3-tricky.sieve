# message: tricky.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "works" { fileinto "t00 works"; }
if body :raw :contains "works" { fileinto "r00 works"; }
if body :content "text/html" :contains "works" { fileinto "h00 works"; }
