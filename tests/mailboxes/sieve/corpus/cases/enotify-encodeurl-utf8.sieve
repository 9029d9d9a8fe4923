require ["enotify", "variables", "fileinto"];
set :encodeurl "e" "Grüße/ä b";
fileinto "e-${e}";
