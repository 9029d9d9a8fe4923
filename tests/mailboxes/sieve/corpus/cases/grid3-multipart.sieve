# message: multipart.eml
# Generated grid: which words of the message each body transform finds; more than the 32
# actions allowed, a run-time error on both sides.
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
if body :text :contains "signed" { fileinto "t09 signed"; }
if body :raw :contains "signed" { fileinto "r09 signed"; }
if body :content "text/html" :contains "signed" { fileinto "h09 signed"; }
if body :text :contains "contract." { fileinto "t10 contract."; }
if body :raw :contains "contract." { fileinto "r10 contract."; }
if body :content "text/html" :contains "contract." { fileinto "h10 contract."; }
if body :text :contains "The" { fileinto "t11 The"; }
if body :raw :contains "The" { fileinto "r11 The"; }
if body :content "text/html" :contains "The" { fileinto "h11 The"; }
if body :text :contains "confidential" { fileinto "t12 confidential"; }
if body :raw :contains "confidential" { fileinto "r12 confidential"; }
if body :content "text/html" :contains "confidential" { fileinto "h12 confidential"; }
if body :text :contains "part" { fileinto "t13 part"; }
if body :raw :contains "part" { fileinto "r13 part"; }
if body :content "text/html" :contains "part" { fileinto "h13 part"; }
if body :text :contains "PDF." { fileinto "t14 PDF."; }
if body :raw :contains "PDF." { fileinto "r14 PDF."; }
if body :content "text/html" :contains "PDF." { fileinto "h14 PDF."; }
if body :text :contains "<html><body><p>Hello" { fileinto "t15 <html><body><p>Hello"; }
if body :raw :contains "<html><body><p>Hello" { fileinto "r15 <html><body><p>Hello"; }
if body :content "text/html" :contains "<html><body><p>Hello" { fileinto "h15 <html><body><p>Hello"; }
if body :text :contains "<b>photos</b>" { fileinto "t16 <b>photos</b>"; }
if body :raw :contains "<b>photos</b>" { fileinto "r16 <b>photos</b>"; }
if body :content "text/html" :contains "<b>photos</b>" { fileinto "h16 <b>photos</b>"; }
if body :text :contains "trip.</p></body></html>" { fileinto "t17 trip.</p></body></html>"; }
if body :raw :contains "trip.</p></body></html>" { fileinto "r17 trip.</p></body></html>"; }
if body :content "text/html" :contains "trip.</p></body></html>" { fileinto "h17 trip.</p></body></html>"; }
if body :text :contains "%PDF-1.4" { fileinto "t18 %PDF-1.4"; }
if body :raw :contains "%PDF-1.4" { fileinto "r18 %PDF-1.4"; }
if body :content "text/html" :contains "%PDF-1.4" { fileinto "h18 %PDF-1.4"; }
if body :text :contains "%äüöß" { fileinto "t19 %äüöß"; }
if body :raw :contains "%äüöß" { fileinto "r19 %äüöß"; }
if body :content "text/html" :contains "%äüöß" { fileinto "h19 %äüöß"; }
if body :text :contains "obj" { fileinto "t20 obj"; }
if body :raw :contains "obj" { fileinto "r20 obj"; }
if body :content "text/html" :contains "obj" { fileinto "h20 obj"; }
if body :text :contains "<</Length" { fileinto "t21 <</Length"; }
if body :raw :contains "<</Length" { fileinto "r21 <</Length"; }
if body :content "text/html" :contains "<</Length" { fileinto "h21 <</Length"; }
if body :text :contains "R>>" { fileinto "t22 R>>"; }
if body :raw :contains "R>>" { fileinto "r22 R>>"; }
if body :content "text/html" :contains "R>>" { fileinto "h22 R>>"; }
if body :text :contains "stream" { fileinto "t23 stream"; }
if body :raw :contains "stream" { fileinto "r23 stream"; }
if body :content "text/html" :contains "stream" { fileinto "h23 stream"; }
if body :text :contains "multi-part" { fileinto "t24 multi-part"; }
if body :raw :contains "multi-part" { fileinto "r24 multi-part"; }
if body :content "text/html" :contains "multi-part" { fileinto "h24 multi-part"; }
