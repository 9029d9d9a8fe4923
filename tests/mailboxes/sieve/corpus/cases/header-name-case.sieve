require "fileinto";
if header :is "SUBJECT" "Project meeting tomorrow" { fileinto "upper-name"; }
if exists "sUbJeCt" { fileinto "mixed-exists"; }
