# message: urgent.eml
require ["relational", "comparator-i;ascii-numeric", "fileinto", "envelope"];
if header :count "eq" :comparator "i;ascii-numeric" "x-label" "3" { fileinto "three-labels"; }
if address :count "eq" :comparator "i;ascii-numeric" ["to", "cc", "bcc"] "4" { fileinto "four-addresses"; }
if envelope :count "eq" :comparator "i;ascii-numeric" "to" "1" { fileinto "one-rcpt"; }
