require "variables";
set :inner "name" "frop";
