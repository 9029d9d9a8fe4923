# Wildcards, escaped wildcards and an empty key.
require "fileinto";
if header :matches "x-priority" "?" { fileinto "one-char"; }
if header :matches "subject" "*" { fileinto "star"; }
if header :matches "subject" "Project\\*" { fileinto "escaped-wrong"; }
if header :contains "subject" "" { fileinto "empty-key"; }
if header :contains "x-absent" "" { fileinto "absent-empty-key"; }
if header :matches "message-id" "<*@*>" { fileinto "msgid-shape"; }
