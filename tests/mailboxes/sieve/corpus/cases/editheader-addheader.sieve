require ["editheader", "fileinto"];
addheader "X-Sieve-Filtered" "yes";
if header :is "x-sieve-filtered" "yes" { fileinto "added"; }
if exists "x-sieve-filtered" { fileinto "exists"; }
