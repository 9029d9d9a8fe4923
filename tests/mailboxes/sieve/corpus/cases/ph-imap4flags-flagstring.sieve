# Ideas from Pigeonhole tests/extensions/imap4flags/flagstring.svtest: duplicates, spacing.
require ["imap4flags", "variables", "fileinto"];
setflag "A B  C   A";
addflag ["b", "D"];
removeflag "c";
fileinto "Work";
if hasflag :is "a" { fileinto "has-a"; }
