# Ideas from Pigeonhole tests/extensions/duplicate/execute.svtest: two different handles.
require ["duplicate", "fileinto"];
if duplicate :handle "one" { fileinto "dup-one"; }
if duplicate :handle "two" :seconds 60 { fileinto "dup-two"; }
fileinto "first-time";
