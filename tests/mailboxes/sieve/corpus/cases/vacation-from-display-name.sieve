require "vacation";
vacation :from "Alice Example <alice@example.org>" :subject "=?utf-8?q?Abwesend?=" "Away.";
