require ["duplicate", "fileinto"];
if duplicate :header "x-not-there" { fileinto "dup"; } else { fileinto "not-dup"; }
