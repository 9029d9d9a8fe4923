# Ideas from Pigeonhole tests/compile/errors/out-address.sieve: an address to refuse.
redirect "Sam Sample error@example.org";
