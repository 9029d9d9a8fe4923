# message: list.eml
# Ideas from Pigeonhole tests/extensions/regex/match-values.svtest: groups, an optional group
# that does not take part, many groups.
require ["regex", "variables", "fileinto"];
if header :regex "sender" "([^-@]*)-([^-@]*)(-x)?@lists\\.example\\.net" { fileinto "g-${1}-${2}-[${3}]"; }
if header :regex "subject" "(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)(.)" { fileinto "many-${9}${10}${11}"; }
if header :regex "subject" "^\\[([a-z]+)\\] Release ([0-9]+)\\.([0-9]+)" { fileinto "rel-${1}-${2}-${3}-${0}"; }
