require ["virustest", "spamtestplus"];
if virustest :percent "5" { keep; }
