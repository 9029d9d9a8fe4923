require ["imap4flags", "fileinto"];
addflag ["\\Frop", "$ok", "bad flag", ""];
fileinto "Work";
