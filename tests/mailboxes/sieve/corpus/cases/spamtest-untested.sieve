require ["spamtest", "fileinto"];
if spamtest :is "0" { fileinto "untested"; }
if spamtest :is "1" { fileinto "clean"; }
