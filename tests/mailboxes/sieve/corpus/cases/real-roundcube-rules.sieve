# message: urgent.eml
# Roundcube managesieve: several rules, each with its own comment line.
require ["fileinto","imap4flags","copy","envelope"];
# rule:[Boss is urgent]
if allof (address :is "from" "boss@example.org", header :contains "subject" "urgent")
{
	addflag "\\Flagged";
	fileinto :copy "Work";
}
# rule:[Forward ops]
if header :contains "x-label" "ops"
{
	redirect :copy "oncall@ops.example";
}
# rule:[To me only]
if not envelope :domain "to" "example.org"
{
	discard;
	stop;
}
