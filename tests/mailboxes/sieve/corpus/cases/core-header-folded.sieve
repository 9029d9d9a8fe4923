# The Received header is folded over three lines; unfolding joins them.
require "fileinto";
if header :contains "received" "example.org with ESMTPS" { fileinto "unfolded"; }
if header :contains "received" "for <alice@example.org>; Sat" { fileinto "unfolded-end"; }
