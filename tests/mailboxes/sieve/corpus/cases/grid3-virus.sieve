# message: virus.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "Please" { fileinto "t00 Please"; }
if body :raw :contains "Please" { fileinto "r00 Please"; }
if body :content "text/html" :contains "Please" { fileinto "h00 Please"; }
if body :text :contains "see" { fileinto "t01 see"; }
if body :raw :contains "see" { fileinto "r01 see"; }
if body :content "text/html" :contains "see" { fileinto "h01 see"; }
if body :text :contains "the" { fileinto "t02 the"; }
if body :raw :contains "the" { fileinto "r02 the"; }
if body :content "text/html" :contains "the" { fileinto "h02 the"; }
if body :text :contains "attached" { fileinto "t03 attached"; }
if body :raw :contains "attached" { fileinto "r03 attached"; }
if body :content "text/html" :contains "attached" { fileinto "h03 attached"; }
if body :text :contains "invoice." { fileinto "t04 invoice."; }
if body :raw :contains "invoice." { fileinto "r04 invoice."; }
if body :content "text/html" :contains "invoice." { fileinto "h04 invoice."; }
if body :text :contains "invoice" { fileinto "t05 invoice"; }
if body :raw :contains "invoice" { fileinto "r05 invoice"; }
if body :content "text/html" :contains "invoice" { fileinto "h05 invoice"; }
