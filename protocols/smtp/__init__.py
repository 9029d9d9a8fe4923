"""SMTP: the inbound MTA (port 25) and the submission MSA (587, 465), on aiosmtpd."""
