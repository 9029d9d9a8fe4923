require "enotify";
notify :options ["frop=frml", "x-a=b"] "mailto:alice@mobile.example";
