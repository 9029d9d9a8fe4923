require "fileinto";
if false { fileinto "no"; } else { stop; }
fileinto "never";
