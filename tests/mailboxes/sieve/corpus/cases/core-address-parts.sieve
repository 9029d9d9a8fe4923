require "fileinto";
if address :is :all "from" "bob@remote.example" { fileinto "all"; }
if address :is :localpart "from" "bob" { fileinto "localpart"; }
if address :is :domain "from" "REMOTE.example" { fileinto "domain"; }
if address :is "from" "Bob Sender <bob@remote.example>" { fileinto "not-with-phrase"; }
if address :contains "cc" "dave" { fileinto "cc-contains"; }
if address :is :domain ["to", "cc"] "other.example" { fileinto "cc-domain"; }
