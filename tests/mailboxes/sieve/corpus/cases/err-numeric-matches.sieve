# i;ascii-numeric has no substring operations (RFC 4790), so :contains/:matches is an error.
require ["comparator-i;ascii-numeric"];
if header :contains :comparator "i;ascii-numeric" "x-priority" "3" { keep; }
