# Vacation only inside a date range, as the webmail vacation form writes it.
require ["vacation", "date", "relational"];
if allof (currentdate :value "ge" "date" "2020-01-01", currentdate :value "le" "date" "2099-12-31") {
  vacation :days 1 :subject "Out of office" :addresses ["alice@example.org"] "Back soon.";
}
