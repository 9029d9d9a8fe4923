require ["vacation", "variables"];
set "me" "alice@example.org";
vacation :addresses ["${me}", "alias@example.org"] :days 2 "Away.";
