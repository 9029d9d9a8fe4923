# message: encoded.eml
require ["encoded-character", "fileinto"];
if address :is :domain "from" "beispiel.${hex:65 78 61 6d 70 6c 65}" { fileinto "Kontakte/M${unicode:fc}nchen"; }
