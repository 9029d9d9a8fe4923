require ["duplicate", "fileinto"];
if duplicate :uniqueid "" { fileinto "dup"; } else { fileinto "not-dup"; }
