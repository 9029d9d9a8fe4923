require "fileinto"; # fileinto
/* a bracketed
   comment */ if /* inside */ true # hash
{ fileinto /* folder */ "Work"; }
