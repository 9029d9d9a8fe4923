# Ideas from Pigeonhole tests/compile/errors/typos.sieve.
if address matches "from" "*fred*" { stop; }
