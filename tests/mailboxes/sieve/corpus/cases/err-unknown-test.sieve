if spinach "x" { keep; }
