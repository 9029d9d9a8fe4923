require "include";
include :personal "loop";
