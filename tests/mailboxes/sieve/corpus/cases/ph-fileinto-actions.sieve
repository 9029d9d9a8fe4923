# message: list.eml
# Ideas from Pigeonhole tests/execute/actions/fileinto.sieve: store, store, keep.
require "fileinto";
fileinto "Lists";
fileinto "Archive";
keep;
