require "fileinto";
if exists "message-id" { fileinto "has-msgid"; }
if exists ["from", "date", "x-missing"] { fileinto "all-three"; }
if exists ["from", "date"] { fileinto "both"; }
if not exists "list-id" { fileinto "no-list"; }
