require "duplicate";
if duplicate :header "message-id" :uniqueid "x" { discard; }
