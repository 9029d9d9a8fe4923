# message: list.eml
require ["duplicate", "fileinto"];
if duplicate :header "list-id" :handle "lists" { fileinto "seen-list"; } else { fileinto "Lists"; }
