# message: list.eml
require ["include", "fileinto", "variables"];
global "listfolder";
include :personal "lists";
if string :is "${listfolder}" "" { fileinto "no-list-folder"; } else { fileinto "seen-${listfolder}"; }
