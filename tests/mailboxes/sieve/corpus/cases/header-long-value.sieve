# message: tricky.eml
require ["fileinto", "relational", "comparator-i;ascii-numeric", "variables"];
set :length "n" "x";
if header :matches "list-id" "*" { set :length "n" "${1}"; }
fileinto "len-${n}";
