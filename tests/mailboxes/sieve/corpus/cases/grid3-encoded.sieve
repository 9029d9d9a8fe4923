# message: encoded.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "Schöne" { fileinto "t00 Schöne"; }
if body :raw :contains "Schöne" { fileinto "r00 Schöne"; }
if body :content "text/html" :contains "Schöne" { fileinto "h00 Schöne"; }
if body :text :contains "Grüße" { fileinto "t01 Grüße"; }
if body :raw :contains "Grüße" { fileinto "r01 Grüße"; }
if body :content "text/html" :contains "Grüße" { fileinto "h01 Grüße"; }
if body :text :contains "aus" { fileinto "t02 aus"; }
if body :raw :contains "aus" { fileinto "r02 aus"; }
if body :content "text/html" :contains "aus" { fileinto "h02 aus"; }
if body :text :contains "München" { fileinto "t03 München"; }
if body :raw :contains "München" { fileinto "r03 München"; }
if body :content "text/html" :contains "München" { fileinto "h03 München"; }
