require ["encoded-character", "fileinto"];
if header :contains "subject" "${hex:4D 65 65 74 69 6e 67}" { fileinto "hex-meeting"; }
if header :contains "subject" "${hex:}Meeting" { fileinto "empty-hex"; }
fileinto "${hex:57 6F 72 6B}";
