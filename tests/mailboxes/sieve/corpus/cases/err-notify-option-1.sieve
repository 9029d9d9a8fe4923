# Ideas from Pigeonhole tests/extensions/enotify/errors/options.sieve.
require "enotify";
notify :options "" "mailto:alice@mobile.example";
