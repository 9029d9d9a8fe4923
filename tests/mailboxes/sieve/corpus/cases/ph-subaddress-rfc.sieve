# Ideas from Pigeonhole tests/extensions/subaddress/rfc.svtest (RFC 5233 2).
# message: tricky.eml
require ["subaddress", "fileinto"];
if address :user "from" "mark" { fileinto "user"; }
if address :detail "from" "sieve" { fileinto "detail"; }
if address :user "cc" "alice" { fileinto "user-no-detail"; }
if anyof (address :detail :matches "cc" ["*", "?"], address :detail :contains "cc" "", address :detail :is "cc" "") { fileinto "missing-detail-matched"; }
