# Four redirects are fine.
require "copy";
redirect :copy "one@forward.example";
redirect :copy "two@forward.example";
redirect :copy "three@forward.example";
redirect "four@forward.example";
