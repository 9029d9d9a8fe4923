# message: odd.eml
require ["body", "fileinto"];
if body :text :contains "Café" { fileinto "decoded-latin1"; }
if body :raw :contains "Caf=E9" { fileinto "raw-qp"; }
