# message: urgent.eml
require ["editheader", "index", "fileinto"];
deleteheader :index 2 "x-label";
if header :index 2 "x-label" "priority-1" { fileinto "third-became-second"; }
deleteheader :last :index 1 "x-label";
if header :is "x-label" "priority-1" { fileinto "wrong"; } else { fileinto "last-gone"; }
