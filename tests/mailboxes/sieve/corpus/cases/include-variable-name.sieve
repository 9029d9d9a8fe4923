require ["include", "variables"];
set "n" "lists";
include "${n}";
