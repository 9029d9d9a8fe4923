require ["fileinto", "variables"];
if string :contains "abc" "" { fileinto "contains-empty"; }
if string :contains "" "a" { fileinto "empty-contains"; }
if string :comparator "i;octet" :contains "ABC" "b" { fileinto "octet-case"; }
if string :is "ABC" "abc" { fileinto "casemap-is"; }
