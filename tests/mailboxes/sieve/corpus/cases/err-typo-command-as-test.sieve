require "fileinto";
fileinto "frup"
true;
