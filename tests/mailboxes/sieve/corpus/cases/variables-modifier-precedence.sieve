# RFC 5229 4.1: modifiers apply in precedence order, whatever order they are written in.
require ["variables", "fileinto"];
set :upperfirst :lower "a" "hELLO wORLD";
set :lower :upperfirst "b" "hELLO wORLD";
set :length :upper "c" "abc";
set :quotewildcard :upper "d" "a*b";
fileinto "${a}|${b}|${c}|${d}";
