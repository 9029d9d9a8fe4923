require ["vacation-seconds"];
vacation :seconds 0 "Every time.";
