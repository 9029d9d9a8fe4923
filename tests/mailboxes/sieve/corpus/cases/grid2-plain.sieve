# message: plain.eml
# Generated grid: the body as each transform gives it and the Date header's parts,
# read back through :matches "*" into folder names.
require ["fileinto", "variables", "body", "date", "index"];
if body :text :matches "*" { set :length "n" "${1}"; fileinto "text ${n}"; }
if body :raw :matches "*" { set :length "n" "${1}"; fileinto "raw ${n}"; }
if body :content "text/plain" :matches "*" { set :length "n" "${1}"; fileinto "plain ${n}"; }
if body :content "text/html" :matches "*" { set :length "n" "${1}"; fileinto "html ${n}"; }
if body :text :matches "*" { set "t" "${1}"; if string :matches "${t}" "?*" { if string :matches "${t}" "*?" {} } }
if body :text :contains "the" { fileinto "text has the"; }
if body :content "text" :contains "CONTRACT" { fileinto "text has contract"; }
if date :originalzone :matches "date" "year" "*" { fileinto "d year [${1}]"; }
if date :originalzone :matches "date" "month" "*" { fileinto "d month [${1}]"; }
if date :originalzone :matches "date" "day" "*" { fileinto "d day [${1}]"; }
if date :originalzone :matches "date" "date" "*" { fileinto "d date [${1}]"; }
if date :originalzone :matches "date" "julian" "*" { fileinto "d julian [${1}]"; }
if date :originalzone :matches "date" "hour" "*" { fileinto "d hour [${1}]"; }
if date :originalzone :matches "date" "minute" "*" { fileinto "d minute [${1}]"; }
if date :originalzone :matches "date" "second" "*" { fileinto "d second [${1}]"; }
if date :originalzone :matches "date" "time" "*" { fileinto "d time [${1}]"; }
if date :originalzone :matches "date" "iso8601" "*" { fileinto "d iso8601 [${1}]"; }
if date :originalzone :matches "date" "std11" "*" { fileinto "d std11 [${1}]"; }
if date :originalzone :matches "date" "zone" "*" { fileinto "d zone [${1}]"; }
if date :originalzone :matches "date" "weekday" "*" { fileinto "d weekday [${1}]"; }
if date :zone "+0000" :matches "date" "iso8601" "*" { fileinto "utc [${1}]"; }
if date :index 1 :zone "+0000" :matches "received" "iso8601" "*" { fileinto "r1 [${1}]"; }
