require "fileinto";
fileinto "global-stop";
stop;
