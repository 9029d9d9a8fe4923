# Two vacation actions: an error at run time.
require "vacation";
vacation "one";
vacation "two";
