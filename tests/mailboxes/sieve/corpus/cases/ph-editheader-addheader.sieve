# message: tricky.eml
# Ideas from Pigeonhole tests/extensions/editheader/addheader.svtest.
require ["editheader", "variables", "fileinto", "index"];
addheader "X-Frop" "frop";
addheader :last "X-Frop" "frup";
if header :index 1 "x-frop" "frop" { fileinto "first-frop"; }
if header :index 2 "x-frop" "frup" { fileinto "second-frup"; }
addheader "X-Long" "a value long enough that a careful implementation would fold it before it reaches the line length limit of a message";
if header :is "x-long" "a value long enough that a careful implementation would fold it before it reaches the line length limit of a message" { fileinto "long-unfolded"; }
