# message: scores.eml
require ["fileinto", "variables"];
if header :matches "x-weird-subject" "*" { fileinto "weird-${1}"; }
if header :matches "x-tabbed" "*" { fileinto "tabbed-${1}"; }
if header :matches "x-folded" "*" { fileinto "folded-${1}"; }
