# Ideas from Pigeonhole tests/extensions/relational/rfc.svtest (RFC 5231 examples).
# message: tricky.eml
require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if address :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["4"] { fileinto "four-addresses"; }
if address :count "ge" :comparator "i;ascii-numeric" ["to"] ["3"] { fileinto "to-three"; }
if header :count "ge" :comparator "i;ascii-numeric" ["received"] ["3"] { fileinto "received-three"; }
if header :count "ge" :comparator "i;ascii-numeric" ["received", "subject"] ["4"] { fileinto "received-subject-four"; }
if header :count "ge" :comparator "i;ascii-numeric" ["to", "cc"] ["5"] { fileinto "fields-five"; }
