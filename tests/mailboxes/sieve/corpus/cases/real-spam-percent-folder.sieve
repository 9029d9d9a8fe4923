# message: spam.eml
require ["fileinto", "spamtest", "relational", "comparator-i;ascii-numeric", "imap4flags"];
if spamtest :value "ge" :comparator "i;ascii-numeric" "5" {
  addflag "$Junk";
  fileinto "Junk";
} elsif spamtest :value "ge" :comparator "i;ascii-numeric" "3" {
  addflag "$MaybeJunk";
}
