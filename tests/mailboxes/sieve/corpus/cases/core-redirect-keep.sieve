redirect "alice@forward.example";
keep;
