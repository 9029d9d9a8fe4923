require "imap4flags";
setflag;
