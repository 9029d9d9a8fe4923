require "variables";
set "1bad" "x";
