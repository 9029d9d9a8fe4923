# message: tricky.eml
# Ideas from Pigeonhole tests/extensions/index/basic.svtest.
require ["index", "variables", "fileinto"];
if header :index 3 :matches "received" "from * by *;*" { fileinto "third-${1}"; }
if header :index 2 :last :matches "received" "from * by *;*" { fileinto "second-last-${1}"; }
if header :index 4 "received" "" { fileinto "past-end"; }
if address :index 2 :is "to" "pete@qa.example.org" { fileinto "second-to"; }
if address :index 1 :last :is "cc" "lee@ops.example.com" { fileinto "last-cc"; }
