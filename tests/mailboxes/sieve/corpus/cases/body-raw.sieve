# message: multipart.eml
require ["body", "fileinto"];
if body :raw :contains "JVBERi0xLjQK" { fileinto "raw-base64"; }
if body :raw :contains "inner-boundary" { fileinto "raw-boundary"; }
if body :raw :contains "signed contract. The" { fileinto "raw-decoded-qp"; }
