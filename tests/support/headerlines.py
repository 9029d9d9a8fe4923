"""Header lines of every shape that readings of a header might tell apart (fields, an
envelope "From " line, continuations, a line without a name or a colon, 8-bit octets, bare
CR and LF line ends): property tests join them into headers."""

HEADER_LINES = [
    b"Subject: a\r\n",
    b"To: b@example.com\n",
    b"From: c <c@example.com>\r",
    b"From x@y Sat Jan  1 00:00:00 2000\r\n",
    b" folded\r\n",
    b"\tfolded\n",
    b": no name\r\n",
    b"no colon\r\n",
    b"X-8bit: caf\xc3\xa9 \xff\r\n",
    b"Name With Space: v\r\n",
    b"Empty:\r\n",
    b"Form\x0cfeed: v\r\n",
    b"\r",
    b"\n",
    b"\r\n",
]
