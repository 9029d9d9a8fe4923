require ["imap4flags", "fileinto", "variables"];
setflag "\\Seen $Label1";
if hasflag "\\seen" { fileinto "has-seen"; }
if hasflag :is "$label1" { fileinto "has-label"; }
if hasflag :contains "\\Flagged" { fileinto "has-flagged"; }
set "mine" "\\Draft";
if hasflag "mine" "\\Draft" { fileinto "variable-has-draft"; }
removeflag "\\Seen";
if hasflag :matches "*" { fileinto "some-flag"; }
