# Explicit keep: the message goes to INBOX once, no implicit keep.
keep;
