# Ideas from Pigeonhole tests/extensions/vacation/message.svtest: a subject with variables.
# message: encoded.eml
require ["vacation", "variables"];
if header :matches "subject" "*" { set "subj" "${1}"; }
vacation :subject "Auto: ${subj}" :from "andre@example.org" :addresses "andre@example.org" "Abwesend.";
