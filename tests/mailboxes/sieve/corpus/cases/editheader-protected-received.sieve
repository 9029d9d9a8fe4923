# Received and Auto-Submitted cannot be removed (RFC 5293 section 6).
require ["editheader", "fileinto"];
deleteheader "received";
if exists "received" { fileinto "received-kept"; }
