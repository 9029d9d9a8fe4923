require ["relational", "comparator-i;ascii-numeric", "fileinto"];
if header :value "lt" :comparator "i;ascii-numeric" "x-priority" "4" { fileinto "prio-lt-4"; }
if header :value "ge" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "prio-ge-3"; }
if header :value "ne" :comparator "i;ascii-numeric" "x-priority" "3" { fileinto "prio-ne-3"; }
if header :value "gt" "subject" "M" { fileinto "subject-gt-M"; }
if header :value "le" "subject" "project" { fileinto "casemap-le"; }
