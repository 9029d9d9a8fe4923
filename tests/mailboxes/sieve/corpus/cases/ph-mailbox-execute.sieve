# Ideas from Pigeonhole tests/extensions/mailbox/execute.svtest.
require ["mailbox", "fileinto"];
fileinto :create "Archive/2026";
if mailboxexists "Archive/2026" { fileinto "exists"; }
if mailboxexists "INBOX" { fileinto "inbox-exists"; }
