require "enotify";
notify :importance "3" "mailto:one@mobile.example";
notify :message "again" "mailto:two@mobile.example,three@mobile.example";
