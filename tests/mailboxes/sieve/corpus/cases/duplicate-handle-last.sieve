require ["duplicate", "variables", "fileinto"];
if header :matches "subject" "*" { set "s" "${1}"; }
if duplicate :handle "subjects" :uniqueid "${s}" :last { fileinto "dup"; } else { fileinto "first"; }
