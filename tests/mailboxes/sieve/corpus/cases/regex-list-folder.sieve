# message: list.eml
require ["regex", "variables", "fileinto"];
if header :regex "subject" "^\\[([^]]+)\\]" {
  fileinto "Lists/${1}";
}
