require ["reject", "variables"];
if address :matches :domain "from" "*" { set "d" "${1}"; }
reject "Mail from ${d} is not accepted.";
