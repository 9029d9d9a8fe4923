# Ideas from Pigeonhole tests/compile/errors/out-address.sieve: an address to refuse.
redirect "jürgen@example.com";
