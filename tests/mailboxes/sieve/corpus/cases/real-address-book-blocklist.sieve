require ["reject"];
if address :is :all "from" ["spammer@bad.example", "bob@remote.example"] {
  reject "You are blocked.";
}
