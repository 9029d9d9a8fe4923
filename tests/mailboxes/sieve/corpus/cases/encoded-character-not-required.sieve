# Without the require, ${hex:...} is literal text.
require "fileinto";
fileinto "${hex:41}";
