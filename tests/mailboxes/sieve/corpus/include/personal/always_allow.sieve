if address :is "from" "boss@example.org" {
  keep;
}
