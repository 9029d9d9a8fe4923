# message: tricky.eml
# RFC 5229 3.2: file by the first [tag] of the subject.
require ["variables", "fileinto"];
if header :matches "Subject" "[*] *" {
  fileinto "tag-${1}";
}
if header :matches "Subject" "[*] [*] *" {
  fileinto "fwd-${2}-${3}";
}
