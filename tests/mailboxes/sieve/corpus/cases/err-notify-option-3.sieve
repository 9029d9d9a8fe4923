# Ideas from Pigeonhole tests/extensions/enotify/errors/options.sieve.
require "enotify";
notify :options "_fred=" "mailto:alice@mobile.example";
