# message: tricky.eml
require ["editheader", "fileinto"];
deleteheader :is "x-empty" "";
if not exists "x-empty" { fileinto "empty-deleted"; }
