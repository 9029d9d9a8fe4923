# message: urgent.eml
require ["editheader", "index", "fileinto", "variables"];
deleteheader :index 1 :last "x-label";
deleteheader :index 1 :last "x-label";
if header :matches "x-label" "*" { fileinto "left-${1}"; }
