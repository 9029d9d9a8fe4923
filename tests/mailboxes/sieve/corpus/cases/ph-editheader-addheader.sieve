# message: tricky.eml
# Ideas from Pigeonhole tests/extensions/editheader/addheader.svtest.
require ["editheader", "variables", "fileinto", "index"];
addheader "X-Fred" "fred";
addheader :last "X-Fred" "fran";
if header :index 1 "x-fred" "fred" { fileinto "first-fred"; }
if header :index 2 "x-fred" "fran" { fileinto "second-fran"; }
addheader "X-Long" "a value long enough that a careful implementation would fold it before it reaches the line length limit of a message";
if header :is "x-long" "a value long enough that a careful implementation would fold it before it reaches the line length limit of a message" { fileinto "long-unfolded"; }
