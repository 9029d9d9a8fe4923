require ["date", "fileinto", "variables"];
if date :matches :zone "-0500" "date" "iso8601" "*" { set "iso" "${1}"; }
if date :matches :zone "-0500" "date" "std11" "*" { set "std" "${1}"; }
if date :matches :zone "-0500" "date" "julian" "*" { set "jd" "${1}"; }
if date :matches :zone "-0500" "date" "time" "*" { set "time" "${1}"; }
fileinto "iso-${iso}";
fileinto "std-${std}";
fileinto "jd-${jd}";
fileinto "time-${time}";
