# Match variables take as few characters as possible except for the last star.
require ["fileinto", "variables"];
if string :matches "a.b.c.d" "*.*" { fileinto "g-${1}-${2}"; }
if string :matches "aaa" "*a*" { fileinto "h-${1}-${2}"; }
if string :matches "xyz" "?*?" { fileinto "q-${1}-${2}-${3}"; }
