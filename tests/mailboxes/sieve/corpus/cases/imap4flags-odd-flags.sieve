require ["imap4flags", "fileinto"];
addflag ["\\Bogus", "$ok", "bad flag", ""];
fileinto "Work";
