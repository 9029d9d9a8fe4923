if envelope :is "from" "x@y" { keep; }
