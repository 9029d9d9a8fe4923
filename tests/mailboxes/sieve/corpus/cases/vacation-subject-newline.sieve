require ["vacation", "variables"];
set "s" "two
lines";
vacation :subject "${s}" "Away.";
