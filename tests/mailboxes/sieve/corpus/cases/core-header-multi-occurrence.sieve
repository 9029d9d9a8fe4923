# message: urgent.eml
require "fileinto";
if header :is "x-label" "incident" { fileinto "second-label"; }
if header :is "x-label" "priority-1" { fileinto "third-label"; }
if header :is "x-label" "ops incident" { fileinto "joined"; }
