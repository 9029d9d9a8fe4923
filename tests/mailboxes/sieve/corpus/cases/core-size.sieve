require "fileinto";
if size :over 100 { fileinto "over-100"; }
if size :under 100 { fileinto "under-100"; }
if size :over 1K { fileinto "over-1k"; }
if size :under 1M { fileinto "under-1m"; }
if size :over 10G { fileinto "over-10g"; }
