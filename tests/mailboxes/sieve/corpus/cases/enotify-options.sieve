require ["enotify", "variables"];
if header :matches "from" "*" { set "from" "${1}"; }
notify :importance "1" :from "sieve@example.org" :message "Mail from ${from}" "mailto:alice@mobile.example";
