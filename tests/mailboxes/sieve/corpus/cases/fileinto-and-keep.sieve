require "fileinto";
fileinto "Work";
keep;
