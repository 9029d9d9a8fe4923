# message: multipart.eml
# In the form of SnappyMail/RainLoop filters: allof/anyof groups and size.
require ["fileinto", "copy", "body"];
# Filter: big attachments
if allof (size :over 500, body :content "application/pdf" :contains "%PDF") {
  fileinto :copy "Attachments";
}
# Filter: photos
if anyof (header :contains "Subject" "Photos", header :contains "Subject" "Pictures") {
  fileinto "Photos";
}
