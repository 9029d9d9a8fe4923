require "vacation";
vacation :days 365 "A year in days.";
