# message: list.eml
# A script in the style of Pigeonhole's tests/execute/examples (a mix of everything).
require ["fileinto", "reject", "envelope", "imap4flags", "variables", "relational", "comparator-i;ascii-numeric"];
if header :contains "x-spam" "yes" { fileinto "Junk"; stop; }
if envelope :is "from" "" { keep; stop; }
if header :matches "list-id" "*<*.*.*>" {
  set :lower "list" "${2}";
  if header :value "ge" :comparator "i;ascii-numeric" "x-priority" "1" { addflag "\\Flagged"; }
  fileinto :flags "$List" "Lists/${list}";
} elsif size :over 5M {
  reject "Too big.";
}
