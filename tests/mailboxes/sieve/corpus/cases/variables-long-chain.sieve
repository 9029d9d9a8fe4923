require ["variables", "fileinto"];
set "a" "x";
set "a" "${a}${a}";
set "a" "${a}${a}";
set "a" "${a}${a}";
set "a" "${a}${a}";
set :length "n" "${a}";
fileinto "len-${n}";
