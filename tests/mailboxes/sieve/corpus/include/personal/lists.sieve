require ["fileinto", "variables", "include"];
global "listfolder";
if header :matches "list-id" "*<*.lists.example.net>" {
  set "listfolder" "Lists/${2}";
  fileinto "${listfolder}";
  return;
}
fileinto "not-a-list";
