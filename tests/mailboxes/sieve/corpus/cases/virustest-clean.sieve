# message: spam.eml
require ["virustest", "fileinto", "variables"];
if virustest :matches "*" { fileinto "virus-${1}"; }
