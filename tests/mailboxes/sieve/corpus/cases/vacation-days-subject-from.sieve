require "vacation";
vacation :days 3 :subject "Out of office" :from "alice@example.org" "Back on 7 December.";
