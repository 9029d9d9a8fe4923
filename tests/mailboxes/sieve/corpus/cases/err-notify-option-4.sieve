# Ideas from Pigeonhole tests/extensions/enotify/errors/options.sieve.
require "enotify";
notify :options "=fred" "mailto:alice@mobile.example";
