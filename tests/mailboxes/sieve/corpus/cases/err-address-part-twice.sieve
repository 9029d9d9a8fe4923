# Ideas from Pigeonhole tests/compile/errors/address-part.sieve.
if address :domain :localpart "from" "x" { keep; }
