# Ideas from Pigeonhole tests/extensions/encoded-character.svtest.
require ["encoded-character", "variables", "fileinto"];
if string :is "${hex:20 09 0a}" " ${hex:9}${hex:A}" { fileinto "whitespace"; }
if string :is "${hex: 61 62 }" "ab" { fileinto "spaces-around"; }
if string :is "${hex:61}${hex:62}" "ab" { fileinto "adjacent"; }
if string :is "${unicode:0000000061}" "a" { fileinto "leading-zeros"; }
if string :is "${hex:xx}" "${hex:xx}" { fileinto "invalid-literal"; }
if string :is "$${hex:61}" "$a" { fileinto "dollar-prefix"; }
