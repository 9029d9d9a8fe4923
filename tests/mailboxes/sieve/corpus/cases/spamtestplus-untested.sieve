require ["spamtestplus", "fileinto"];
if spamtest :percent :is "0" { fileinto "untested-percent"; }
