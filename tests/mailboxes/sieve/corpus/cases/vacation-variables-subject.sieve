require ["vacation", "variables"];
if header :matches "subject" "*" { set "subject" "${1}"; }
vacation :subject "Re: ${subject}" :days 1 "I will read it later.";
