# plain.eml is 770 octets: :over and :under are strict (RFC 5228 5.9).
require "fileinto";
if size :over 769 { fileinto "over-n-1"; }
if size :over 770 { fileinto "over-n"; }
if size :under 770 { fileinto "under-n"; }
if size :under 771 { fileinto "under-n+1"; }
