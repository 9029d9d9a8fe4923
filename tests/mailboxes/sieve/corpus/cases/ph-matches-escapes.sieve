# message: tricky.eml
# Ideas from Pigeonhole tests/match-types/matches.svtest: escaped wildcards.
require "fileinto";
if header :matches "x-marks" "55555\\?\\?\\??" { fileinto "escaped-q"; }
if header :matches "x-marks" "55555\\?\\?\\?" { fileinto "escaped-q-short"; }
if header :matches "x-marks" "55555*\\?\\??" { fileinto "star-then-escaped"; }
if header :matches "x-marks" "*\\?\\?\\?z" { fileinto "initial-star-escaped"; }
if header :matches "x-stars" "\\*\\*\\*\\*\\**" { fileinto "escaped-stars-then-star"; }
if header :matches "x-stars" "\\*\\*\\*\\*\\*\\*\\*\\*\\*\\*" { fileinto "all-escaped"; }
if header :matches "x-stars" "\\*\\*\\*\\*\\*\\*\\*\\*\\*\\*\\*" { fileinto "one-too-many"; }
if header :matches "x-backslash" "*\\\\" { fileinto "backslash-end"; }
