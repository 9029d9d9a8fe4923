# message: urgent.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "The" { fileinto "t00 The"; }
if body :raw :contains "The" { fileinto "r00 The"; }
if body :content "text/html" :contains "The" { fileinto "h00 The"; }
if body :text :contains "mail" { fileinto "t01 mail"; }
if body :raw :contains "mail" { fileinto "r01 mail"; }
if body :content "text/html" :contains "mail" { fileinto "h01 mail"; }
if body :text :contains "server" { fileinto "t02 server"; }
if body :raw :contains "server" { fileinto "r02 server"; }
if body :content "text/html" :contains "server" { fileinto "h02 server"; }
if body :text :contains "down." { fileinto "t03 down."; }
if body :raw :contains "down." { fileinto "r03 down."; }
if body :content "text/html" :contains "down." { fileinto "h03 down."; }
if body :text :contains "Call" { fileinto "t04 Call"; }
if body :raw :contains "Call" { fileinto "r04 Call"; }
if body :content "text/html" :contains "Call" { fileinto "h04 Call"; }
if body :text :contains "me." { fileinto "t05 me."; }
if body :raw :contains "me." { fileinto "r05 me."; }
if body :content "text/html" :contains "me." { fileinto "h05 me."; }
if body :text :contains "Error" { fileinto "t06 Error"; }
if body :raw :contains "Error" { fileinto "r06 Error"; }
if body :content "text/html" :contains "Error" { fileinto "h06 Error"; }
if body :text :contains "code" { fileinto "t07 code"; }
if body :raw :contains "code" { fileinto "r07 code"; }
if body :content "text/html" :contains "code" { fileinto "h07 code"; }
if body :text :contains "503" { fileinto "t08 503"; }
if body :raw :contains "503" { fileinto "r08 503"; }
if body :content "text/html" :contains "503" { fileinto "h08 503"; }
if body :text :contains "58." { fileinto "t09 58."; }
if body :raw :contains "58." { fileinto "r09 58."; }
if body :content "text/html" :contains "58." { fileinto "h09 58."; }
