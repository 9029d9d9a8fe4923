# message: multipart.eml
require ["fileinto", "body"];
if anyof (size :over 500, body :content "application" :contains "") {
  fileinto "Attachments";
}
