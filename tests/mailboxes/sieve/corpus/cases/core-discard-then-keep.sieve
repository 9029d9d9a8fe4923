# keep after discard: keep wins (discard only cancels the implicit keep).
discard;
keep;
