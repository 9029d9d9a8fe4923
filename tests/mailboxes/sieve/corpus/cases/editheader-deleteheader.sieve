# message: urgent.eml
require ["editheader", "fileinto"];
deleteheader "x-label";
deleteheader "importance";
if not exists "x-label" { fileinto "labels-gone"; }
if not exists "importance" { fileinto "importance-gone"; }
if exists "subject" { fileinto "subject-stays"; }
