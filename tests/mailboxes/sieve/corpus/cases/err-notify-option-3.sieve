# Ideas from Pigeonhole tests/extensions/enotify/errors/options.sieve.
require "enotify";
notify :options "_frop=" "mailto:alice@mobile.example";
