# message: urgent.eml
require ["regex", "fileinto"];
if header :regex :comparator "i;octet" "subject" "^URGENT" { fileinto "octet-upper"; }
if header :regex :comparator "i;octet" "subject" "^urgent" { fileinto "octet-lower"; }
if header :regex "subject" "[[:upper:]]{6}:" { fileinto "posix-class"; }
if header :regex "x-priority" "^[0-9]$" { fileinto "digit"; }
