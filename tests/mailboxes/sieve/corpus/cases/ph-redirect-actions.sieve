# Ideas from Pigeonhole tests/execute/actions/redirect.sieve: redirect, keep, redirect, redirect.
redirect "first@forward.example";
keep;
redirect "second@forward.example";
redirect "third@forward.example";
