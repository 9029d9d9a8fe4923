# Also from Pigeonhole's compile/redirect.sieve: white space inside the addr-spec (CFWS).
require "copy";
redirect :copy "five @example.org";
redirect :copy "Six Person< six@ example.org >";
