require ["envelope", "fileinto"];
if envelope :is "from" "bob@remote.example" { fileinto "from-all"; }
if envelope :is :localpart "to" "alice" { fileinto "to-local"; }
if envelope :is :domain "to" "EXAMPLE.ORG" { fileinto "to-domain"; }
if envelope :contains "from" "nomatch" { fileinto "wrong"; }
if envelope :matches ["from", "to"] "*@example.org" { fileinto "either"; }
