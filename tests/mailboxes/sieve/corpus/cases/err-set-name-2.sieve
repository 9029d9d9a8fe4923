# Ideas from Pigeonhole tests/extensions/variables/errors/set.sieve.
require "variables";
set "...." "fred";
