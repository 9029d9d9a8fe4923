# A failed match leaves the previous match variables alone.
require ["variables", "fileinto"];
if header :matches "from" "Bob *" { set "first" "${1}"; }
if header :matches "subject" "nomatch*" { }
fileinto "after-${1}";
