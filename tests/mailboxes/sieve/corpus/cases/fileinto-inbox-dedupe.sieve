# fileinto "INBOX" and keep are the same action.
require "fileinto";
fileinto "INBOX";
keep;
