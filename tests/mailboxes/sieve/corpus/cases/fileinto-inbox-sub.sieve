require "fileinto";
fileinto "INBOX/Sub";
