# message: tricky.eml
# Ideas from Pigeonhole tests/match-types/matches.svtest: an empty header value.
require "fileinto";
if header :matches "x-empty" "" { fileinto "empty-empty"; }
if header :matches "x-empty" "*" { fileinto "empty-star"; }
if header :matches "x-empty" "?" { fileinto "empty-qmark"; }
if header :is "x-empty" "" { fileinto "empty-is"; }
if header :contains "x-empty" "" { fileinto "empty-contains"; }
