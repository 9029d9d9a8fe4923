require ["regex", "variables", "fileinto"];
if address :regex :all "from" "^([a-z]+)@([a-z.]+)$" {
  fileinto "r-${1}-${2}";
}
if header :regex "x-priority" "([0-9])" { fileinto "prio-${1}"; }
