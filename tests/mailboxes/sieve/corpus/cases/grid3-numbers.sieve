# message: numbers.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "numbers" { fileinto "t00 numbers"; }
if body :raw :contains "numbers" { fileinto "r00 numbers"; }
if body :content "text/html" :contains "numbers" { fileinto "h00 numbers"; }
