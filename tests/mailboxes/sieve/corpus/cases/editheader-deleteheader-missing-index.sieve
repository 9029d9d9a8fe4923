require ["editheader", "index", "fileinto"];
deleteheader :index 2 "subject";
if exists "subject" { fileinto "subject-stays"; }
