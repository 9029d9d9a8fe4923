require ["imap4flags"];
setflag ["\\seen", "\\SEEN", "\\Flagged"];
