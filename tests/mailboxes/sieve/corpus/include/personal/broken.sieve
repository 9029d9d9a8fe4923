require "fileinto";
fileinto "missing semicolon"
