require ["vacation", "fileinto"];
fileinto "Work";
vacation "Away.";
