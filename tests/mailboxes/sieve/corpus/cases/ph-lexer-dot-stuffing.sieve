# Ideas from Pigeonhole tests/lexer.svtest: dot-stuffing in text: strings, unknown escapes.
require ["variables", "fileinto"];
set "text" text: # comment
Line 1
.Line 2
..Line 3
Line 4
.
;
set "quoted" "Line 1
.Line 2
.Line 3
Line 4
";
if string :is "${text}" "${quoted}" { fileinto "dot-stuffing"; }
if string :is "\a\a\a" "aaa" { fileinto "unknown-escapes"; }
