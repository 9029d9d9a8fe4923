require ["variables", "fileinto"];
set :lower "a" "MiXeD";
set :upper "b" "MiXeD";
set :lowerfirst "c" "MiXeD";
set :upperfirst "d" "miXeD";
set :upperfirst :lower "e" "MIXED";
set :length "f" "abcdef";
set :quotewildcard "g" "a*b?c\\d";
fileinto "${a}-${b}-${c}-${d}-${e}-${f}";
if string :is "${g}" "a\\*b\\?c\\\\d" { fileinto "quoted"; }
