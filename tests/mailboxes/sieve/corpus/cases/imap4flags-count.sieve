require ["imap4flags", "relational", "comparator-i;ascii-numeric", "fileinto"];
setflag ["\\Seen", "\\Flagged", "$A"];
if hasflag :count "eq" :comparator "i;ascii-numeric" "3" { fileinto "three"; }
if hasflag :count "gt" :comparator "i;ascii-numeric" "3" { fileinto "more"; }
