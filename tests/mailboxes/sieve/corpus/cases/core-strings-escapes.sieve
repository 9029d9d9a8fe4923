require "fileinto";
if header :contains "from" "\"" { fileinto "quote"; }
if header :is "x-priority" "\3" { fileinto "escaped-3"; }
if header :matches "subject" "Project*" { fileinto "Wo\rk"; }
