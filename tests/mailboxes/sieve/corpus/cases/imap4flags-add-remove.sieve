require ["imap4flags", "fileinto"];
addflag ["\\Flagged", "$Work", "\\Seen"];
removeflag "\\Seen";
fileinto "Work";
addflag "\\Answered";
keep;
