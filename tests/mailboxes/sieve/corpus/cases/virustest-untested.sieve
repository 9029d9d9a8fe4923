require ["virustest", "fileinto"];
if virustest :is "0" { fileinto "untested"; }
