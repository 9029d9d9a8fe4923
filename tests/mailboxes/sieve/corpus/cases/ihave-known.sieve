require ["ihave", "fileinto"];
if ihave "fileinto" { fileinto "has-fileinto"; }
if ihave "no-such-ext" { fileinto "wrong"; }
