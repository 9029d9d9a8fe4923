# Ideas from Pigeonhole tests/extensions/body/basic.svtest: body :contains/:matches on a
# plain text body; the header is not part of the body.
# message: tricky.eml
require ["body", "fileinto"];
if body :contains "works" { fileinto "contains"; }
if body :matches "*works!*" { fileinto "matches"; }
if body :contains "List-Id" { fileinto "header-in-body"; }
if body :raw :is "It works!" { fileinto "raw-is-exact"; }
