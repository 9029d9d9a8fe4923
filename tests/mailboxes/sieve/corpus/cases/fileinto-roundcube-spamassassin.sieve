# message: spam.eml
# Roundcube managesieve style rule file.
require ["fileinto"];
# rule:[Spam]
if anyof (header :contains "x-spam" "yes", header :contains "subject" "***SPAM***")
{
	fileinto "Junk";
	stop;
}
# rule:[Boss]
if header :contains "from" "boss@example.org"
{
	fileinto "Work";
}
