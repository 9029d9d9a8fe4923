# Ideas from Pigeonhole tests/extensions/enotify/errors/options.sieve.
require "enotify";
notify :options "frop" "mailto:alice@mobile.example";
