require ["imap4flags", "fileinto", "variables"];
set "flags" "";
addflag "flags" "\\Flagged";
addflag "flags" "$Work $Work";
fileinto :flags "${flags}" "Work";
keep;
