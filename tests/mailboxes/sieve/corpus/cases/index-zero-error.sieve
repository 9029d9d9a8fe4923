require "index";
if header :index 0 "received" "x" { keep; }
