require "variables";
set :inner "name" "fred";
