require "enotify";
notify "mailto:?to=alice@mobile.example";
