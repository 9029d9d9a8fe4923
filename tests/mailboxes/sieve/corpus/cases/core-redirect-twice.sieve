# The same address twice is one redirect; a second address is another.
redirect "alice@forward.example";
redirect "ALICE@forward.example";
redirect "alice@forward.example";
redirect "second@forward.example";
