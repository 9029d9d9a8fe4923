require ["variables", "fileinto"];
set :quotewildcard "pat" "Project*";
if header :matches "subject" "${pat}" { fileinto "literal-star"; }
set "pat2" "Project*";
if header :matches "subject" "${pat2}" { fileinto "wildcard-star"; }
