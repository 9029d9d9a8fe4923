# message: urgent.eml
require ["editheader", "index", "fileinto"];
addheader "X-Label" "first";
addheader :last "X-Label" "last";
if header :index 1 "x-label" "first" { fileinto "prepended"; }
if header :index 1 :last "x-label" "last" { fileinto "appended"; }
if header :index 2 "x-label" "ops" { fileinto "ops-moved-down"; }
