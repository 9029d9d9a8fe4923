# Roundcube managesieve vacation form output.
require ["vacation"];
# rule:[Out of office]
if true
{
	vacation :days 7 :addresses ["alice@example.org"] :subject "Out of office" :from "Alice Example <alice@example.org>" "I am on leave until 2026-12-14. For urgent matters write to carol@example.org.";
}
