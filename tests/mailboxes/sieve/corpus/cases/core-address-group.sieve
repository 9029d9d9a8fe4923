# message: spam.eml
# An empty group To: undisclosed-recipients:; has no addresses.
require "fileinto";
if address :contains "to" "undisclosed" { fileinto "group-name"; }
if exists "to" { fileinto "to-exists"; }
if address :matches :all "to" "*" { fileinto "some-address"; } else { fileinto "no-address"; }
