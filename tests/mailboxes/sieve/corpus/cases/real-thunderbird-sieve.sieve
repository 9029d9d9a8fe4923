# message: list.eml
# As written by Thunderbird's Sieve add-on editor.
require ["fileinto","imap4flags"];

# Mailing lists
if anyof (header :contains "List-Id" "dev.lists.example.net",
          header :contains "Sender" "dev-bounces@lists.example.net")
{
  fileinto "Lists";
  setflag "\\Seen";
  stop;
}

# Everything else
keep;
