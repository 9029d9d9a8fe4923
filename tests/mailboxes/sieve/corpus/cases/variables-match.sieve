require ["variables", "fileinto"];
if header :matches "subject" "* meeting *" {
  fileinto "m-${1}-${2}";
}
if address :matches :all "from" "*@*.*" {
  fileinto "user-${1}-${2}-${3}";
}
if header :matches "x-priority" "?" { fileinto "p${1}${0}"; }
