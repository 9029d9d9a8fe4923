# Ideas from Pigeonhole tests/extensions/variables/errors/set.sieve: not an error.
require ["variables", "fileinto"];
set "\n\a\m\e" "fred";
set :UPPER "other" "fred";
fileinto "${name}-${other}";
