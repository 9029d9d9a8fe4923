# message: numbers.eml
require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "lt" :comparator "i;ascii-numeric" "x-count" "10" { fileinto "some-lt-10"; }
if header :value "ge" :comparator "i;ascii-numeric" "x-count" ["100", "10"] { fileinto "some-ge-10"; }
if header :value "ne" "x-count" "abc" { fileinto "some-ne-abc"; }
if header :value "eq" :comparator "i;octet" "x-count" "ABC" { fileinto "octet-eq-ABC"; }
