require "enotify";
notify "mailto:alice@mobile.example";
notify "mailto:alice@mobile.example";
