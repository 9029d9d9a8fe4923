require ["editheader", "variables", "fileinto"];
if header :matches "subject" "*" { set "s" "${1}"; }
deleteheader "subject";
addheader "Subject" "[filtered] ${s}";
if header :is "subject" "[filtered] Project meeting tomorrow" { fileinto "rewritten"; }
