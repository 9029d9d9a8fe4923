require ["duplicate", "fileinto"];
if duplicate :uniqueid "meeting-1" :seconds 3600 { discard; } else { fileinto "fresh"; }
