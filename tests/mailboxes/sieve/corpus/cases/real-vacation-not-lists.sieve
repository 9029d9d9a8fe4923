# message: list.eml
# A hand-written vacation that stays silent for mailing lists and bulk mail.
require ["vacation", "fileinto"];
if anyof (exists "list-id", header :is "precedence" ["list", "bulk", "junk"]) {
  fileinto "Lists";
  stop;
}
vacation :days 5 :subject "Away" "I am away.";
