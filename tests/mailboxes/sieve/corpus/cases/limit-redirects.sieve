# Five redirects where four are allowed: a run-time error.
redirect "one@forward.example";
redirect "two@forward.example";
redirect "three@forward.example";
redirect "four@forward.example";
redirect "five@forward.example";
