require "enotify";
notify :message "two" "mailto:two@mobile.example?to=three@mobile.example";
