# message: tricky.eml
# The RFC 5229 3.2 example as Pigeonhole tests it (variables/match.svtest).
require ["variables", "fileinto"];
if header :matches "List-ID" "*<*@*" {
  fileinto "INBOX.lists.${2}";
  stop;
}
