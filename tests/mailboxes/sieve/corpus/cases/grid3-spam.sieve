# message: spam.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "<html><body><p>Claim" { fileinto "t00 <html><body><p>Claim"; }
if body :raw :contains "<html><body><p>Claim" { fileinto "r00 <html><body><p>Claim"; }
if body :content "text/html" :contains "<html><body><p>Claim" { fileinto "h00 <html><body><p>Claim"; }
if body :text :contains "your" { fileinto "t01 your"; }
if body :raw :contains "your" { fileinto "r01 your"; }
if body :content "text/html" :contains "your" { fileinto "h01 your"; }
if body :text :contains "PRIZE" { fileinto "t02 PRIZE"; }
if body :raw :contains "PRIZE" { fileinto "r02 PRIZE"; }
if body :content "text/html" :contains "PRIZE" { fileinto "h02 PRIZE"; }
if body :text :contains "now" { fileinto "t03 now"; }
if body :raw :contains "now" { fileinto "r03 now"; }
if body :content "text/html" :contains "now" { fileinto "h03 now"; }
if body :text :contains "click" { fileinto "t04 click"; }
if body :raw :contains "click" { fileinto "r04 click"; }
if body :content "text/html" :contains "click" { fileinto "h04 click"; }
if body :text :contains "here" { fileinto "t05 here"; }
if body :raw :contains "here" { fileinto "r05 here"; }
if body :content "text/html" :contains "here" { fileinto "h05 here"; }
if body :text :contains "</p></body></html>" { fileinto "t06 </p></body></html>"; }
if body :raw :contains "</p></body></html>" { fileinto "r06 </p></body></html>"; }
if body :content "text/html" :contains "</p></body></html>" { fileinto "h06 </p></body></html>"; }
