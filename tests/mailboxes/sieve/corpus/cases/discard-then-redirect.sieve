discard;
redirect "alice@forward.example";
