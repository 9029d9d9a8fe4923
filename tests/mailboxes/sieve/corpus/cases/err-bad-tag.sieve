if header :bogus "subject" "x" { keep; }
