require ["regex", "fileinto"];
if header :regex "subject" "^Project .* tomorrow$" { fileinto "anchored"; }
if header :regex "subject" "meet(ing|s)" { fileinto "alternation"; }
if header :regex "subject" "^meeting" { fileinto "wrong-anchor"; }
if header :regex :comparator "i;octet" "subject" "project" { fileinto "octet-case"; }
if header :regex "subject" "PROJECT" { fileinto "casemap-insensitive"; }
