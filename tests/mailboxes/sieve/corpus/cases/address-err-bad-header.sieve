# address only works on headers that hold addresses.
if address :is "subject" "x@y" { keep; }
