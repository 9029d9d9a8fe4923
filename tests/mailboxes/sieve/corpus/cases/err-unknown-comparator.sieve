if header :comparator "i;no-such" :is "subject" "x" { keep; }
