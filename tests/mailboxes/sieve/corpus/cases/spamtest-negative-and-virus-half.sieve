# message: scores.eml
require ["spamtestplus", "virustest", "variables", "fileinto"];
if spamtest :matches "*" { fileinto "spam-${1}"; }
if spamtest :percent :matches "*" { fileinto "pct-${1}"; }
if virustest :matches "*" { fileinto "virus-${1}"; }
