redirect "Alice <alice@forward.example>";
