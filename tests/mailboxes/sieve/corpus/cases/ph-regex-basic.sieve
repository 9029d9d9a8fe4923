# message: tricky.eml
# Ideas from Pigeonhole tests/extensions/regex/basic.svtest.
require ["regex", "variables", "fileinto"];
if address :regex :comparator "i;ascii-casemap" "from" ["mark(\\+.*)?@it\\.example\\.com", "mark(\\+.*)?@tools\\.example\\.com"] { fileinto "second-pattern"; }
if header :regex "x-missing" [".*\\.com", ".*"] { fileinto "absent-header"; }
if address :regex "to" [".*\\.uk", ".*\\.nl"] { fileinto "wrong-tld"; }
if address :regex "to" [".*\\.uk", ".*qa\\..*"] { fileinto "last-pattern"; }
set "re" "mark[+](sieve)@tools.example.com";
if header :regex "from" "${re}" { fileinto "variable-${1}"; }
