# message: auto.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "Build" { fileinto "t00 Build"; }
if body :raw :contains "Build" { fileinto "r00 Build"; }
if body :content "text/html" :contains "Build" { fileinto "h00 Build"; }
if body :text :contains "512" { fileinto "t01 512"; }
if body :raw :contains "512" { fileinto "r01 512"; }
if body :content "text/html" :contains "512" { fileinto "h01 512"; }
if body :text :contains "project" { fileinto "t02 project"; }
if body :raw :contains "project" { fileinto "r02 project"; }
if body :content "text/html" :contains "project" { fileinto "h02 project"; }
if body :text :contains "mailhost" { fileinto "t03 mailhost"; }
if body :raw :contains "mailhost" { fileinto "r03 mailhost"; }
if body :content "text/html" :contains "mailhost" { fileinto "h03 mailhost"; }
if body :text :contains "passed" { fileinto "t04 passed"; }
if body :raw :contains "passed" { fileinto "r04 passed"; }
if body :content "text/html" :contains "passed" { fileinto "h04 passed"; }
if body :text :contains "4m12s." { fileinto "t05 4m12s."; }
if body :raw :contains "4m12s." { fileinto "r05 4m12s."; }
if body :content "text/html" :contains "4m12s." { fileinto "h05 4m12s."; }
