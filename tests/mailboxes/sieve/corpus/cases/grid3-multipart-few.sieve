# message: multipart.eml
# The same grid, few enough words that the actions stay under the limit of 32.
require ["fileinto", "body"];
if body :text :contains "Hello" { fileinto "t00 Hello"; }
if body :raw :contains "Hello" { fileinto "r00 Hello"; }
if body :content "text/html" :contains "Hello" { fileinto "h00 Hello"; }
if body :text :contains "Alice" { fileinto "t01 Alice"; }
if body :raw :contains "Alice" { fileinto "r01 Alice"; }
if body :content "text/html" :contains "Alice" { fileinto "h01 Alice"; }
if body :text :contains "here" { fileinto "t02 here"; }
if body :raw :contains "here" { fileinto "r02 here"; }
if body :content "text/html" :contains "here" { fileinto "h02 here"; }
if body :text :contains "are" { fileinto "t03 are"; }
if body :raw :contains "are" { fileinto "r03 are"; }
if body :content "text/html" :contains "are" { fileinto "h03 are"; }
if body :text :contains "the" { fileinto "t04 the"; }
if body :raw :contains "the" { fileinto "r04 the"; }
if body :content "text/html" :contains "the" { fileinto "h04 the"; }
if body :text :contains "photos" { fileinto "t05 photos"; }
if body :raw :contains "photos" { fileinto "r05 photos"; }
if body :content "text/html" :contains "photos" { fileinto "h05 photos"; }
if body :text :contains "from" { fileinto "t06 from"; }
if body :raw :contains "from" { fileinto "r06 from"; }
if body :content "text/html" :contains "from" { fileinto "h06 from"; }
if body :text :contains "trip" { fileinto "t07 trip"; }
if body :raw :contains "trip" { fileinto "r07 trip"; }
if body :content "text/html" :contains "trip" { fileinto "h07 trip"; }
if body :text :contains "and" { fileinto "t08 and"; }
if body :raw :contains "and" { fileinto "r08 and"; }
if body :content "text/html" :contains "and" { fileinto "h08 and"; }
