require "variables";
set "foo.bar" "x";
