"""SMTP: the inbound MTA (port 25) and the submission MSA (587, 465): a sans-IO parser, a state
table and a thin asyncio session of our own."""
