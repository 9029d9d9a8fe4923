require ["vacation", "vacation-seconds"];
vacation :seconds 3600 :subject "Away for an hour" "Back soon.";
