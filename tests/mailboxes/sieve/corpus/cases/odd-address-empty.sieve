# message: odd.eml
require ["fileinto", "variables"];
if address :matches :all "reply-to" "*" { fileinto "reply-to-[${1}]"; }
if exists "reply-to" { fileinto "reply-to-exists"; }
