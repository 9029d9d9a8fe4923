require "copy";
redirect :copy "alice@forward.example";
