# Ideas from Pigeonhole tests/compile/errors/out-address.sieve: an address to accept.
redirect "jpn.@example.com";
