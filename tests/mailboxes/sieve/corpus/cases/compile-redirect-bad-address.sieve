redirect "alice";
