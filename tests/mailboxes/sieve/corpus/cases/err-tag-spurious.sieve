if true :comparator "i;ascii-numeric" { keep; }
