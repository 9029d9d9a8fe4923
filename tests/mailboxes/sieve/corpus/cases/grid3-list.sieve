# message: list.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "Release" { fileinto "t00 Release"; }
if body :raw :contains "Release" { fileinto "r00 Release"; }
if body :content "text/html" :contains "Release" { fileinto "h00 Release"; }
if body :text :contains "2.4" { fileinto "t01 2.4"; }
if body :raw :contains "2.4" { fileinto "r01 2.4"; }
if body :content "text/html" :contains "2.4" { fileinto "h01 2.4"; }
if body :text :contains "fixes" { fileinto "t02 fixes"; }
if body :raw :contains "fixes" { fileinto "r02 fixes"; }
if body :content "text/html" :contains "fixes" { fileinto "h02 fixes"; }
if body :text :contains "the" { fileinto "t03 the"; }
if body :raw :contains "the" { fileinto "r03 the"; }
if body :content "text/html" :contains "the" { fileinto "h03 the"; }
if body :text :contains "importer" { fileinto "t04 importer"; }
if body :raw :contains "importer" { fileinto "r04 importer"; }
if body :content "text/html" :contains "importer" { fileinto "h04 importer"; }
if body :text :contains "and" { fileinto "t05 and"; }
if body :raw :contains "and" { fileinto "r05 and"; }
if body :content "text/html" :contains "and" { fileinto "h05 and"; }
if body :text :contains "adds" { fileinto "t06 adds"; }
if body :raw :contains "adds" { fileinto "r06 adds"; }
if body :content "text/html" :contains "adds" { fileinto "h06 adds"; }
if body :text :contains "sieve" { fileinto "t07 sieve"; }
if body :raw :contains "sieve" { fileinto "r07 sieve"; }
if body :content "text/html" :contains "sieve" { fileinto "h07 sieve"; }
if body :text :contains "editor." { fileinto "t08 editor."; }
if body :raw :contains "editor." { fileinto "r08 editor."; }
if body :content "text/html" :contains "editor." { fileinto "h08 editor."; }
if body :text :contains "editor" { fileinto "t09 editor"; }
if body :raw :contains "editor" { fileinto "r09 editor"; }
if body :content "text/html" :contains "editor" { fileinto "h09 editor"; }
