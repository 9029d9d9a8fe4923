require "fileinto";
fileinto "Work";
fileinto "Archive/2026";
fileinto "Work";
