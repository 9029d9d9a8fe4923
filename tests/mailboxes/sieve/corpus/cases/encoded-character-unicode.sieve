# message: encoded.eml
require ["encoded-character", "fileinto"];
if header :contains "subject" "Gr${unicode:FC DF}e" { fileinto "unicode"; }
if header :contains "subject" "${UNICODE:0047}" { fileinto "upper-name"; }
if header :contains "subject" "$${hex:47}" { fileinto "dollar"; }
if header :contains "subject" "${hex:47" { fileinto "unterminated"; }
