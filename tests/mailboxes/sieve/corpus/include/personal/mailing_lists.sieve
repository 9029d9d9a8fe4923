require "fileinto";
if header :is "sender" "dev-bounces@lists.example.net" {
  fileinto "Lists";
}
