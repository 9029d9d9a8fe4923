# message: forwarded.eml
# Generated grid: which words of the message each body transform finds.
require ["fileinto", "body"];
if body :text :contains "See" { fileinto "t00 See"; }
if body :raw :contains "See" { fileinto "r00 See"; }
if body :content "text/html" :contains "See" { fileinto "h00 See"; }
if body :text :contains "the" { fileinto "t01 the"; }
if body :raw :contains "the" { fileinto "r01 the"; }
if body :content "text/html" :contains "the" { fileinto "h01 the"; }
if body :text :contains "forwarded" { fileinto "t02 forwarded"; }
if body :raw :contains "forwarded" { fileinto "r02 forwarded"; }
if body :content "text/html" :contains "forwarded" { fileinto "h02 forwarded"; }
if body :text :contains "message" { fileinto "t03 message"; }
if body :raw :contains "message" { fileinto "r03 message"; }
if body :content "text/html" :contains "message" { fileinto "h03 message"; }
if body :text :contains "below." { fileinto "t04 below."; }
if body :raw :contains "below." { fileinto "r04 below."; }
if body :content "text/html" :contains "below." { fileinto "h04 below."; }
if body :text :contains "The" { fileinto "t05 The"; }
if body :raw :contains "The" { fileinto "r05 The"; }
if body :content "text/html" :contains "The" { fileinto "h05 The"; }
if body :text :contains "contract" { fileinto "t06 contract"; }
if body :raw :contains "contract" { fileinto "r06 contract"; }
if body :content "text/html" :contains "contract" { fileinto "h06 contract"; }
if body :text :contains "draft" { fileinto "t07 draft"; }
if body :raw :contains "draft" { fileinto "r07 draft"; }
if body :content "text/html" :contains "draft" { fileinto "h07 draft"; }
if body :text :contains "ready" { fileinto "t08 ready"; }
if body :raw :contains "ready" { fileinto "r08 ready"; }
if body :content "text/html" :contains "ready" { fileinto "h08 ready"; }
if body :text :contains "for" { fileinto "t09 for"; }
if body :raw :contains "for" { fileinto "r09 for"; }
if body :content "text/html" :contains "for" { fileinto "h09 for"; }
if body :text :contains "signature." { fileinto "t10 signature."; }
if body :raw :contains "signature." { fileinto "r10 signature."; }
if body :content "text/html" :contains "signature." { fileinto "h10 signature."; }
if body :text :contains "Content-Type" { fileinto "t11 Content-Type"; }
if body :raw :contains "Content-Type" { fileinto "r11 Content-Type"; }
if body :content "text/html" :contains "Content-Type" { fileinto "h11 Content-Type"; }
if body :text :contains "text/plain" { fileinto "t12 text/plain"; }
if body :raw :contains "text/plain" { fileinto "r12 text/plain"; }
if body :content "text/html" :contains "text/plain" { fileinto "h12 text/plain"; }
