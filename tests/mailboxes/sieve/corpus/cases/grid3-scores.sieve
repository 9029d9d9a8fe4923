# message: scores.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "Short." { fileinto "t00 Short."; }
if body :raw :contains "Short." { fileinto "r00 Short."; }
if body :content "text/html" :contains "Short." { fileinto "h00 Short."; }
