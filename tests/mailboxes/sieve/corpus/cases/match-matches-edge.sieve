# Adapted from the :matches corner cases: empty strings, adjacent stars, escapes.
require ["fileinto", "variables"];
if string :matches "" "*" { fileinto "empty-star"; }
if string :matches "" "?" { fileinto "empty-qmark"; }
if string :matches "abc" "a**c" { fileinto "double-star"; }
if string :matches "a*c" "a\\*c" { fileinto "escaped-star"; }
if string :matches "abcabc" "*bc" { fileinto "suffix"; }
if string :matches "x" "*?*" { fileinto "star-qmark-star"; }
