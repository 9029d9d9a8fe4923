require ["variables", "relational", "comparator-i;ascii-numeric", "fileinto"];
if string :count "eq" :comparator "i;ascii-numeric" ["a", "b", ""] "2" { fileinto "two-nonempty"; }
if string :count "eq" :comparator "i;ascii-numeric" "" "0" { fileinto "zero"; }
