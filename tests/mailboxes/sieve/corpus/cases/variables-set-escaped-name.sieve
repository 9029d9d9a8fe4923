# Ideas from Pigeonhole tests/extensions/variables/errors/set.sieve: not an error.
require ["variables", "fileinto"];
set "\n\a\m\e" "frop";
set :UPPER "other" "frop";
fileinto "${name}-${other}";
