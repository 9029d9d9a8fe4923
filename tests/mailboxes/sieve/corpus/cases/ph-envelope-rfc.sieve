# Ideas from Pigeonhole tests/extensions/envelope.svtest.
# from: mark+sieve@tools.example.com
# to: alice+sieve@example.org
require ["envelope", "subaddress", "fileinto"];
if envelope :is :all "from" "mark+sieve@tools.example.com" { fileinto "from-all"; }
if envelope :is :localpart "from" "mark+sieve" { fileinto "from-local"; }
if envelope :is :user "from" "mark" { fileinto "from-user"; }
if envelope :is :detail "to" "sieve" { fileinto "to-detail"; }
if envelope :is :domain "from" "TOOLS.EXAMPLE.COM" { fileinto "from-domain"; }
