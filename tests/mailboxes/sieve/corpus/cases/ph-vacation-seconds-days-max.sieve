require ["vacation", "vacation-seconds"];
vacation :seconds 31536000 "A year.";
