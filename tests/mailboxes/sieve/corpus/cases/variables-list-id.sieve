# message: list.eml
require ["variables", "fileinto"];
if header :matches "list-id" "*<*.lists.example.net>" {
  set :lower "list" "${2}";
  fileinto "Lists/${list}";
}
