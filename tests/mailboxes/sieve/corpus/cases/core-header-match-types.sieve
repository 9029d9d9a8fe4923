# :is, :contains and :matches with the default comparator (case-insensitive).
require "fileinto";
if header :is "subject" "project meeting tomorrow" { fileinto "is-yes"; } else { fileinto "is-no"; }
if header :is "subject" "Project meeting" { fileinto "is-part-yes"; } else { fileinto "is-part-no"; }
if header :contains "subject" "MEETING" { fileinto "contains-yes"; } else { fileinto "contains-no"; }
if header :matches "subject" "*meet??g*" { fileinto "matches-yes"; } else { fileinto "matches-no"; }
if header :matches "subject" "meeting*" { fileinto "anchored-yes"; } else { fileinto "anchored-no"; }
