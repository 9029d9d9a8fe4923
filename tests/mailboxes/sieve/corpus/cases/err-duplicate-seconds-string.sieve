require "duplicate";
if duplicate :seconds "60" { keep; }
