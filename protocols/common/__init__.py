"""What the mail front ends (SMTP, IMAP, POP3, ManageSieve) share, one place each: SASL
(sasl.py) and the password login (login.py). Each protocol keeps its framing and its replies."""
