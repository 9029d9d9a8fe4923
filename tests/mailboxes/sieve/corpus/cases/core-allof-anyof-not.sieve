require "fileinto";
if allof (header :contains "subject" "meeting", address :domain "from" "remote.example") { fileinto "allof"; }
if allof (header :contains "subject" "meeting", false) { fileinto "allof-false"; }
if anyof (false, header :contains "subject" "nomatch", true) { fileinto "anyof"; }
if anyof (false, false) { fileinto "anyof-false"; }
if not not true { fileinto "not-not"; }
