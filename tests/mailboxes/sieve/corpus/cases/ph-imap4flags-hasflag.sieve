# Ideas from Pigeonhole tests/extensions/imap4flags/hasflag.svtest.
require ["imap4flags", "variables", "fileinto", "relational", "comparator-i;ascii-numeric"];
set "a" "\\Seen \\Flagged $Work";
if hasflag "a" "\\flagged" { fileinto "var-flagged"; }
if hasflag :matches "a" "$*" { fileinto "var-dollar"; }
if hasflag :count "ge" :comparator "i;ascii-numeric" "a" "3" { fileinto "var-count"; }
if hasflag :contains "a" "ork" { fileinto "var-contains"; }
if hasflag "\\Seen" { fileinto "internal-empty"; }
