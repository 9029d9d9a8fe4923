require "fileinto";
fileinto "Work";
stop;
fileinto "Junk";
