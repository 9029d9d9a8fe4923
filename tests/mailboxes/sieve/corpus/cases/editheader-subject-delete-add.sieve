# Subject may always be deleted and added (RFC 5293 6).
require ["editheader", "fileinto", "variables"];
if header :matches "subject" "*" { set "s" "${1}"; }
deleteheader "Subject";
addheader :last "Subject" "[sieve] ${s}";
if header :is "subject" "[sieve] Project meeting tomorrow" { fileinto "resubjected"; }
