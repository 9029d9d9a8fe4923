require ["imap4flags", "variables", "fileinto"];
set "one" "\\Seen";
set "two" "$Work \\Flagged";
if hasflag ["one", "two"] "$work" { fileinto "in-second"; }
if hasflag ["one", "two"] ["\\Draft", "\\seen"] { fileinto "in-first"; }
