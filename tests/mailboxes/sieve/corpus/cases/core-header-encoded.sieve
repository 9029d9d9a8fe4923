# message: encoded.eml
# RFC 2047 encoded words are decoded before comparison.
require "fileinto";
if header :contains "subject" "Grüße" { fileinto "decoded-subject"; }
if header :contains "from" "Jürgen" { fileinto "decoded-from"; }
if header :contains "subject" "=?UTF-8?" { fileinto "raw-subject"; }
if address :is :localpart "from" "juergen" { fileinto "from-local"; }
