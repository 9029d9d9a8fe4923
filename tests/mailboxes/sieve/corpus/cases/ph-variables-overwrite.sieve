# Ideas from Pigeonhole tests/extensions/variables/match.svtest: values change only on a match.
require ["variables", "fileinto"];
set "s1" "the cat jumps off the table";
set "s2" "the dog barks at the cat in the alley";
if string :matches "${s1}" "the * jumps off the *" { fileinto "one-${1}-${2}"; }
if string :matches "${s2}" "the * barks at the * in the store" { fileinto "wrong"; }
fileinto "kept-${1}-${2}";
if string :matches "${s2}" "the * barks at the * in the alley" { fileinto "two-${1}-${2}"; }
