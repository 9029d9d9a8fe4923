# Ideas from Pigeonhole tests/extensions/variables/match.svtest: leading zeroes, non-greedy
# matching, an index past the last group, ${0}.
require ["variables", "fileinto"];
if string :matches "fred:fran:fred" "*:*:*" { fileinto "zeroes-${0000002}"; }
if string :matches "ab.......ab.........ab...." "?*ab*" { fileinto "ng-${1}|${2}|${3}"; }
if string :matches "test" "*" { fileinto "past-end-[${2}]"; }
if string :matches "a b c d" "? ? ? ?" { fileinto "zero-${0}"; }
