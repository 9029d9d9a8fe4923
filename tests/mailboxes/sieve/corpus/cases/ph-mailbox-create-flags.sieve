require ["mailbox", "fileinto", "imap4flags", "copy"];
fileinto :create :flags "\\Seen" :copy "Receipts/2026";
if mailboxexists "Receipts/2026" { fileinto "already"; }
