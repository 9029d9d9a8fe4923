require "vacation";
vacation :days 0 "zero days";
