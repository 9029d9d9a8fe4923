# Several header names and several keys: any pair matching is enough.
require "fileinto";
if header :contains ["x-nothing", "subject"] ["absent", "meeting"] { fileinto "both-lists"; }
if header :contains ["x-nothing", "x-other"] "meeting" { fileinto "wrong"; }
if header :is "x-priority" ["1", "2", "3"] { fileinto "prio-3"; }
