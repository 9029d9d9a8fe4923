# Ideas from Pigeonhole tests/extensions/variables/match.svtest: anyof stops at the first
# true test, so later tests do not set match values.
require ["variables", "fileinto"];
if anyof (string :matches "a b c" "? ?",
          string :matches "puk pok puk pok" "pu*ok",
          string :matches "snot kip snot" "snot*snot") {
  fileinto "sc-${1}";
}
