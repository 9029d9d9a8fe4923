require ["enotify", "variables"];
set "m" "line one
line two";
notify :message "${m}" "mailto:alice@mobile.example";
