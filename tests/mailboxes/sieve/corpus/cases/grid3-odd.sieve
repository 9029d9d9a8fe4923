# message: odd.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "Café" { fileinto "t00 Café"; }
if body :raw :contains "Café" { fileinto "r00 Café"; }
if body :content "text/html" :contains "Café" { fileinto "h00 Café"; }
if body :text :contains "lait" { fileinto "t01 lait"; }
if body :raw :contains "lait" { fileinto "r01 lait"; }
if body :content "text/html" :contains "lait" { fileinto "h01 lait"; }
if body :text :contains "vous" { fileinto "t02 vous"; }
if body :raw :contains "vous" { fileinto "r02 vous"; }
if body :content "text/html" :contains "vous" { fileinto "h02 vous"; }
if body :text :contains "plaît." { fileinto "t03 plaît."; }
if body :raw :contains "plaît." { fileinto "r03 plaît."; }
if body :content "text/html" :contains "plaît." { fileinto "h03 plaît."; }
if body :text :contains "Caf=E9" { fileinto "t04 Caf=E9"; }
if body :raw :contains "Caf=E9" { fileinto "r04 Caf=E9"; }
if body :content "text/html" :contains "Caf=E9" { fileinto "h04 Caf=E9"; }
if body :text :contains "pla=EEt" { fileinto "t05 pla=EEt"; }
if body :raw :contains "pla=EEt" { fileinto "r05 pla=EEt"; }
if body :content "text/html" :contains "pla=EEt" { fileinto "h05 pla=EEt"; }
