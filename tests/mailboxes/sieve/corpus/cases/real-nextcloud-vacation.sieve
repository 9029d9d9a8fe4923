# In the form of Nextcloud Mail's autoresponder block (dates as ISO 8601 in UTC).
require ["date", "relational", "vacation"];
### Nextcloud Mail: Vacation Responder ### DON'T EDIT ###
if allof(currentdate :value "ge" "iso8601" "2020-01-01T00:00:00Z", currentdate :value "le" "iso8601" "2099-12-31T23:59:59Z") {
	vacation :days 4 :subject "Out of office" :addresses ["alice@example.org"] :from "Alice <alice@example.org>" "I am away.";
}
### Nextcloud Mail: Vacation Responder ### END ###
