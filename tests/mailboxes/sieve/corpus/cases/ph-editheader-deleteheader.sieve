# message: tricky.eml
# Ideas from Pigeonhole tests/extensions/editheader/deleteheader.svtest.
require ["editheader", "fileinto", "relational", "comparator-i;ascii-numeric"];
deleteheader :contains "to" "qa.example.org";
if header :count "eq" :comparator "i;ascii-numeric" "to" "1" { fileinto "one-to"; }
deleteheader :matches "cc" "*ops*";
if address :is "cc" "alice@example.org" { fileinto "cc-alice-left"; }
if not header :contains "cc" "lee" { fileinto "lee-gone"; }
deleteheader "x-nonexistent";
fileinto "done";
