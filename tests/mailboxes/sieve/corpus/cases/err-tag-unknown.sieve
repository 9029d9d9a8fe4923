# Ideas from Pigeonhole tests/compile/errors/tag.sieve.
require "envelope";
if envelope :isnot :localpart "from" "nina" { discard; }
