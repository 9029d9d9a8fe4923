# message: list.eml
require "fileinto";
if header :contains "subject" "nomatch" {
  fileinto "Work";
} elsif header :contains "list-id" "dev.lists.example.net" {
  fileinto "Lists";
} else {
  fileinto "Junk";
}
