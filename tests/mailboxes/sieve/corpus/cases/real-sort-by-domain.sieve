# message: encoded.eml
require ["fileinto", "variables"];
if address :matches :domain "from" "*.example" {
  set :upperfirst "d" "${1}";
  fileinto "Contacts/${d}";
}
