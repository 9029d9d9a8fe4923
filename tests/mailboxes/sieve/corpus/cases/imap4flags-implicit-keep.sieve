# message: spam.eml
require ["imap4flags", "fileinto"];
if header :contains "x-spam" "yes" {
  addflag "$Junk";
  addflag "\\Seen";
}
