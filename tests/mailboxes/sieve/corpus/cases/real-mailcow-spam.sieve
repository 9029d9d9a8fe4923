# message: spam.eml
# A global spam rule of the kind mail suites install before the user's script.
require ["fileinto", "mailbox", "imap4flags"];
if header :contains "X-Spam" "Yes" {
  setflag "\\Seen";
  fileinto :create "Junk";
  stop;
}
