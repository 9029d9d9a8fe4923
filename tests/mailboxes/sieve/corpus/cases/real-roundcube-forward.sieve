# Roundcube's forwarding form: keep a copy and forward.
require ["copy"];
# rule:[forward]
if true
{
	redirect :copy "alice.private@home.example";
}
