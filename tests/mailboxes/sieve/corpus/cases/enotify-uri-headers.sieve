require "enotify";
notify :message "m" "mailto:alice@mobile.example?cc=bob@mobile.example&body=hello&in-reply-to=%3Cx@y%3E";
