require "vacation";
vacation :days 14 :addresses ["alice@example.org", "a.example@example.org"] :handle "winter-2026" "Away skiing.";
