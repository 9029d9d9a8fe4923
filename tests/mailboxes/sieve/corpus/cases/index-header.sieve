# message: urgent.eml
require ["index", "fileinto"];
if header :index 1 "x-label" "ops" { fileinto "first"; }
if header :index 2 "x-label" "ops" { fileinto "wrong"; }
if header :index 1 :last "x-label" "priority-1" { fileinto "last"; }
if header :index 4 "x-label" "" { fileinto "past-end"; }
if address :index 2 "to" "bob@remote.example" { fileinto "second-to"; }
