require ["enotify"];
notify :importance "3" :options ["x-opt=1"] "mailto:alice@mobile.example?subject=New%20mail";
