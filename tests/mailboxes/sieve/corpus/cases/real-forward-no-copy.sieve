# Forward without a copy: the implicit keep is cancelled.
if address :is "to" "alice@example.org" {
  redirect "alice.private@home.example";
}
