# Ideas from Pigeonhole tests/compile/redirect.sieve: white space around the parts.
require "copy";
redirect :copy " one@example.org";
redirect :copy "two@example.org ";
redirect :copy "Three Person<three@example.org>";
redirect :copy "  Four Person  <four@example.org> ";
