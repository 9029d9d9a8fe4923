# message: auto.eml
require ["fileinto"];
if header :is "auto-submitted" "auto-generated" {
  if header :contains "subject" "passed" { discard; stop; }
  fileinto "Notifications";
}
