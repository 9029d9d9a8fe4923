require ["imap4flags", "fileinto"];
fileinto :flags ["\\Seen", "\\Flagged"] "Work";
fileinto :flags "$Urgent \\Deleted" "Archive";
keep :flags "";
