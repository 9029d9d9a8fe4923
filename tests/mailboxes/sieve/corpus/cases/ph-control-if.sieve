# Ideas from Pigeonhole tests/control-if.svtest: nested if/elsif/else.
require "fileinto";
if false { fileinto "a"; } elsif false { fileinto "b"; } elsif true {
  if true { fileinto "c1"; } else { fileinto "c2"; }
  if false { fileinto "c3"; } elsif false { fileinto "c4"; } else { fileinto "c5"; }
} else { fileinto "d"; }
