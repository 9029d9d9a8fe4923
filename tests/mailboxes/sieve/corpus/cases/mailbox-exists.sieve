require ["mailbox", "fileinto"];
if mailboxexists "Work" { fileinto "work-exists"; }
if mailboxexists "Nope" { fileinto "nope-exists"; }
if mailboxexists ["Work", "Nope"] { fileinto "both-exist"; }
if mailboxexists ["Work", "Junk"] { fileinto "work-junk-exist"; }
