require "enotify";
notify :from "not an address" "mailto:alice@mobile.example";
