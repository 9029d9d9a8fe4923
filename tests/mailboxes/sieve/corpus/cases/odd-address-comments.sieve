# message: odd.eml
require ["fileinto"];
if address :is "to" "alice@example.org" { fileinto "comment-stripped"; }
if address :is "to" "bob@example.org" { fileinto "quoted-phrase"; }
if header :contains "to" "Alice at home" { fileinto "comment-in-header"; }
if address :is :localpart "cc" "eloise" { fileinto "encoded-name"; }
