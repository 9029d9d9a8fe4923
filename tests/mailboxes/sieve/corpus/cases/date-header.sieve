require ["date", "relational", "fileinto"];
if date :is "date" "year" "2026" { fileinto "year"; }
if date :is "date" "month" "11" { fileinto "month"; }
if date :value "ge" "date" "date" "2026-11-28" { fileinto "after-28"; }
if date :is "date" "weekday" "6" { fileinto "saturday"; }
if date :is :originalzone "date" "hour" "14" { fileinto "orig-hour"; }
if date :is :zone "+0000" "date" "hour" "13" { fileinto "utc-hour"; }
if date :is :originalzone "date" "zone" "+0100" { fileinto "zone"; }
