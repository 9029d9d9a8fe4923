require ["imap4flags"];
setflag "\\Seen \\Flagged";
removeflag ["\\seen", "\\flagged"];
