# Ideas from Pigeonhole tests/control-stop.svtest: stop inside nested blocks.
require "fileinto";
if true {
  fileinto "one";
  if true { fileinto "two"; stop; fileinto "three"; }
  fileinto "four";
}
fileinto "five";
