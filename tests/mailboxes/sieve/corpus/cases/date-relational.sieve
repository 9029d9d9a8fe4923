require ["date", "relational", "comparator-i;ascii-numeric", "fileinto"];
if date :value "gt" "date" "date" "2026-11-27" { fileinto "after-27th"; }
if date :value "lt" :zone "+1400" "date" "date" "2026-11-29" { fileinto "before-29th-in-kiribati"; }
if date :count "eq" :comparator "i;ascii-numeric" "date" "year" "1" { fileinto "one-date"; }
