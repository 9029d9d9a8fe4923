require "enotify";
notify :options ["fred=frank", "x-a=b"] "mailto:alice@mobile.example";
