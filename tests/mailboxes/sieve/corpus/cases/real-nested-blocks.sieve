# message: urgent.eml
require ["fileinto", "imap4flags"];
if address :domain "from" "example.org" {
  if header :contains "subject" "URGENT" {
    if header :is "importance" "high" {
      addflag "\\Flagged";
    } else {
      addflag "$Low";
    }
    fileinto "Work";
  }
  keep;
}
