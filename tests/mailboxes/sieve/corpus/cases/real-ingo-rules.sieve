# message: list.eml
# In the form of Horde Ingo's rules: one comment per rule, explicit comparators.
require ["fileinto", "reject", "vacation", "imap4flags"];
# Ingo rule: Blacklist
if address :all :comparator "i;ascii-casemap" :is "From" "spam@bad.example" {
  discard;
  stop;
}
# Ingo rule: Lists
if header :comparator "i;ascii-casemap" :contains "List-Id" "dev.lists.example.net" {
  fileinto "INBOX.Lists";
  stop;
}
