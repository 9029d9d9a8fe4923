# Ideas from Pigeonhole tests/compile/errors/out-address.sieve: an address to refuse.
redirect "sam@example.org,tom@example.net";
