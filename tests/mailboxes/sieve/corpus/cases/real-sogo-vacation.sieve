# In the form of SOGo's vacation script (text: reason, days, addresses).
require ["vacation"];
vacation :days 7 :addresses ["alice@example.org", "a.example@example.org"] :subject "Vacation" text:
Hello,

I am on vacation.
.
;
