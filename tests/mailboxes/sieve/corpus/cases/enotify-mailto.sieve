require "enotify";
notify "mailto:alice@mobile.example";
