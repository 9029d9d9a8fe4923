require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] "3" { fileinto "three-or-more"; }
if address :count "eq" :comparator "i;ascii-numeric" "cc" "2" { fileinto "cc-two"; }
if header :count "eq" :comparator "i;ascii-numeric" "received" "2" { fileinto "received-two"; }
if header :count "eq" :comparator "i;ascii-numeric" "x-missing" "0" { fileinto "missing-zero"; }
