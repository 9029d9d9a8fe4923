require ["vacation", "date", "relational"];
if currentdate :value "lt" "date" "2001-01-01" {
  vacation "Long gone.";
}
