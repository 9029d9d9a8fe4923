# message: plain.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "Alice" { fileinto "t00 Alice"; }
if body :raw :contains "Alice" { fileinto "r00 Alice"; }
if body :content "text/html" :contains "Alice" { fileinto "h00 Alice"; }
if body :text :contains "the" { fileinto "t01 the"; }
if body :raw :contains "the" { fileinto "r01 the"; }
if body :content "text/html" :contains "the" { fileinto "h01 the"; }
if body :text :contains "project" { fileinto "t02 project"; }
if body :raw :contains "project" { fileinto "r02 project"; }
if body :content "text/html" :contains "project" { fileinto "h02 project"; }
if body :text :contains "meeting" { fileinto "t03 meeting"; }
if body :raw :contains "meeting" { fileinto "r03 meeting"; }
if body :content "text/html" :contains "meeting" { fileinto "h03 meeting"; }
if body :text :contains "tomorrow" { fileinto "t04 tomorrow"; }
if body :raw :contains "tomorrow" { fileinto "r04 tomorrow"; }
if body :content "text/html" :contains "tomorrow" { fileinto "h04 tomorrow"; }
if body :text :contains "room" { fileinto "t05 room"; }
if body :raw :contains "room" { fileinto "r05 room"; }
if body :content "text/html" :contains "room" { fileinto "h05 room"; }
if body :text :contains "Please" { fileinto "t06 Please"; }
if body :raw :contains "Please" { fileinto "r06 Please"; }
if body :content "text/html" :contains "Please" { fileinto "h06 Please"; }
if body :text :contains "bring" { fileinto "t07 bring"; }
if body :raw :contains "bring" { fileinto "r07 bring"; }
if body :content "text/html" :contains "bring" { fileinto "h07 bring"; }
if body :text :contains "quarterly" { fileinto "t08 quarterly"; }
if body :raw :contains "quarterly" { fileinto "r08 quarterly"; }
if body :content "text/html" :contains "quarterly" { fileinto "h08 quarterly"; }
if body :text :contains "report." { fileinto "t09 report."; }
if body :raw :contains "report." { fileinto "r09 report."; }
if body :content "text/html" :contains "report." { fileinto "h09 report."; }
if body :text :contains "Bob" { fileinto "t10 Bob"; }
if body :raw :contains "Bob" { fileinto "r10 Bob"; }
if body :content "text/html" :contains "Bob" { fileinto "h10 Bob"; }
