# message: tricky.eml
# Ideas from Pigeonhole tests/match-types/matches.svtest: '*' and '?' at the start, middle, end.
require "fileinto";
if address :matches "from" "*@to*s*examp*.com" { fileinto "multi-star"; }
if address :matches "from" "*@t*lsex*mple.com" { fileinto "multi-star-no"; }
if address :matches "from" "mark+sieve@tools.*" { fileinto "end-star"; }
if address :matches "from" "*+sieve@tools.example.com" { fileinto "begin-star"; }
if address :matches "from" "mark+sieve?tools.example.com" { fileinto "middle-qmark"; }
if address :matches "from" "?ark+sieve@tools.example.co?" { fileinto "edge-qmarks"; }
if address :matches "from" "?a?k?sieve?to?ls.exampl?.co?" { fileinto "many-qmarks"; }
if address :matches "from" "?a?k?sieve?tols.exam?le.co?" { fileinto "many-qmarks-no"; }
