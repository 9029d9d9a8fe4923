# Ideas from Pigeonhole tests/compile/errors/out-address.sieve: an address to accept.
redirect "Ok Good <sam@example.org>";
