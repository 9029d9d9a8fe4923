require ["variables", "fileinto"];
if string :is "${nothing}" "" { fileinto "empty-unknown"; }
if string :is "${1}" "" { fileinto "empty-match"; }
set "x" "${x}${x}y";
fileinto "v-${x}";
