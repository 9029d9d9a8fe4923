redirect "alice@forward.example";
