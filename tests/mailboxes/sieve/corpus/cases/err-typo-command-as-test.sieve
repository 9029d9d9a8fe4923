require "fileinto";
fileinto "fran"
true;
