# The date of the first Received header, after the semicolon.
require ["date", "index", "fileinto"];
if date :index 1 :zone "+0000" "received" "time" "14:05:09" { fileinto "first-received"; }
if date :index 2 :zone "+0000" "received" "time" "13:05:06" { fileinto "second-received"; }
if date :last :index 1 :zone "+0000" "received" "time" "13:05:06" { fileinto "last-received"; }
