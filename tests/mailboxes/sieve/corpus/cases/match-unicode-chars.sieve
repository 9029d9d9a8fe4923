# message: encoded.eml
require ["fileinto"];
if header :matches "subject" "Gr??e*" { fileinto "qmark-is-a-character"; }
if header :matches "subject" "Gr????e*" { fileinto "qmark-is-an-octet"; }
if header :contains "subject" "GRÜSSE" { fileinto "no-unicode-fold"; }
if header :contains "subject" "GRüßE" { fileinto "ascii-fold"; }
if header :comparator "i;octet" :matches "subject" "Gr??e*" { fileinto "octet-qmark-char"; }
