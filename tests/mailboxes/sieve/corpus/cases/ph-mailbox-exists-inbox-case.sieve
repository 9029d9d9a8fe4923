require ["mailbox", "fileinto"];
if mailboxexists "inbox" { fileinto "inbox-lower"; }
if mailboxexists "work" { fileinto "work-lower"; }
