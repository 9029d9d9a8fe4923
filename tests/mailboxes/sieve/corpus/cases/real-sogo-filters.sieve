# message: urgent.eml
# In the form of SOGo's generated filters.
require ["fileinto", "reject", "envelope", "imap4flags"];
if anyof (header :contains "subject" "URGENT", address :is "from" "boss@example.org") {
    addflag "\\Flagged";
    fileinto "INBOX/Work";
    stop;
}
if header :contains "list-id" "dev" {
    fileinto "INBOX/Lists";
    stop;
}
