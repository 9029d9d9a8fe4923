# message: urgent.eml
require ["editheader", "fileinto", "relational", "comparator-i;ascii-numeric"];
deleteheader :is "x-label" "incident";
deleteheader :matches "x-label" "prio*";
if header :count "eq" :comparator "i;ascii-numeric" "x-label" "1" { fileinto "one-left"; }
if header :is "x-label" "ops" { fileinto "ops-left"; }
