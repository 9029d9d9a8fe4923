# Ideas from Pigeonhole tests/extensions/editheader/protected.svtest: Auto-Submitted and
# Received are not to be edited (RFC 5293 6).
# message: auto.eml
require ["editheader", "fileinto"];
deleteheader "auto-submitted";
addheader "Auto-Submitted" "no";
if header :is "auto-submitted" "auto-generated" { fileinto "auto-submitted-kept"; }
if header :is "auto-submitted" "no" { fileinto "auto-submitted-added"; }
