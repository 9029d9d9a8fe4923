# A value with non-ASCII text is added (RFC 5293 5: encoded as needed) and reads back decoded.
require ["editheader", "fileinto"];
addheader "X-Note" "Grüße";
if header :is "x-note" "Grüße" { fileinto "utf8-roundtrip"; }
