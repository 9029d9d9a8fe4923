require ["duplicate", "variables", "fileinto"];
set "h" "list-handle";
if duplicate :handle "${h}" :header "message-id" { fileinto "dup"; } else { fileinto "not-dup"; }
