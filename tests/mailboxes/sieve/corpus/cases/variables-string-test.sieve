require ["variables", "fileinto", "relational", "comparator-i;ascii-numeric"];
set "a" "10";
set "b" "9";
if string :is "${a}" "10" { fileinto "is"; }
if string :value "gt" :comparator "i;ascii-numeric" "${a}" "${b}" { fileinto "numeric-gt"; }
if string :value "gt" "${a}" "${b}" { fileinto "text-gt"; }
if string :count "eq" :comparator "i;ascii-numeric" ["${a}", "", "${b}"] "2" { fileinto "count-nonempty"; }
if string :is "" "" { fileinto "empty"; }
