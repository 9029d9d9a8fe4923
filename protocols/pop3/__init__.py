"""POP3 (RFC 1939) with CAPA, response codes (RFC 2449), STLS (RFC 2595) and SASL (RFC 5034).

parser.py turns bytes into commands, states.py says which command each state allows,
responses.py holds every reply, maildrop.py the message list and wire form, lease.py the
one-session-per-maildrop lock, and server.py moves bytes between sockets and those.
"""
