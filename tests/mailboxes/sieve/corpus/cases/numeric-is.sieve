require ["comparator-i;ascii-numeric", "fileinto"];
if header :is :comparator "i;ascii-numeric" "x-priority" "003" { fileinto "zeros-equal"; }
if header :is :comparator "i;ascii-numeric" "subject" "anything" { fileinto "non-digits-equal"; }
