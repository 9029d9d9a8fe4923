# message: tricky.eml
# Ideas from Pigeonhole tests/extensions/date/date-parts.svtest.
require ["date", "variables", "fileinto"];
if date :matches "date" "year" "*" { set "y" "${1}"; }
if date :matches "date" "month" "*" { set "m" "${1}"; }
if date :matches "date" "day" "*" { set "d" "${1}"; }
if date :matches "date" "hour" "*" { set "h" "${1}"; }
if date :matches "date" "minute" "*" { set "mi" "${1}"; }
if date :matches "date" "second" "*" { set "s" "${1}"; }
if date :matches "date" "weekday" "*" { set "w" "${1}"; }
fileinto "${y}-${m}-${d} ${h}:${mi}:${s} w${w}";
