require "enotify";
notify :importance "4" "mailto:alice@mobile.example";
