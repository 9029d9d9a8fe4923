# message: odd.eml
# Generated grid: what each address part and header value is, read back through
# :matches "*" into the folder name, and how many of each there are.
require ["fileinto", "variables", "subaddress", "relational", "comparator-i;ascii-numeric", "envelope"];
if address :all :matches "from" "*" { fileinto "a from all [${1}]"; }
if address :localpart :matches "from" "*" { fileinto "a from localpart [${1}]"; }
if address :domain :matches "from" "*" { fileinto "a from domain [${1}]"; }
if address :user :matches "from" "*" { fileinto "a from user [${1}]"; }
if address :detail :matches "from" "*" { fileinto "a from detail [${1}]"; }
if address :count "ge" :comparator "i;ascii-numeric" "from" "1" { if address :count "eq" :comparator "i;ascii-numeric" "from" "1" { fileinto "n from 1"; } elsif address :count "eq" :comparator "i;ascii-numeric" "from" "2" { fileinto "n from 2"; } else { fileinto "n from more"; } }
if address :all :matches "to" "*" { fileinto "a to all [${1}]"; }
if address :localpart :matches "to" "*" { fileinto "a to localpart [${1}]"; }
if address :domain :matches "to" "*" { fileinto "a to domain [${1}]"; }
if address :user :matches "to" "*" { fileinto "a to user [${1}]"; }
if address :detail :matches "to" "*" { fileinto "a to detail [${1}]"; }
if address :count "ge" :comparator "i;ascii-numeric" "to" "1" { if address :count "eq" :comparator "i;ascii-numeric" "to" "1" { fileinto "n to 1"; } elsif address :count "eq" :comparator "i;ascii-numeric" "to" "2" { fileinto "n to 2"; } else { fileinto "n to more"; } }
if address :all :matches "cc" "*" { fileinto "a cc all [${1}]"; }
if address :localpart :matches "cc" "*" { fileinto "a cc localpart [${1}]"; }
if address :domain :matches "cc" "*" { fileinto "a cc domain [${1}]"; }
if address :user :matches "cc" "*" { fileinto "a cc user [${1}]"; }
if address :detail :matches "cc" "*" { fileinto "a cc detail [${1}]"; }
if address :count "ge" :comparator "i;ascii-numeric" "cc" "1" { if address :count "eq" :comparator "i;ascii-numeric" "cc" "1" { fileinto "n cc 1"; } elsif address :count "eq" :comparator "i;ascii-numeric" "cc" "2" { fileinto "n cc 2"; } else { fileinto "n cc more"; } }
if address :all :matches "sender" "*" { fileinto "a sender all [${1}]"; }
if address :localpart :matches "sender" "*" { fileinto "a sender localpart [${1}]"; }
if address :domain :matches "sender" "*" { fileinto "a sender domain [${1}]"; }
if address :user :matches "sender" "*" { fileinto "a sender user [${1}]"; }
if address :detail :matches "sender" "*" { fileinto "a sender detail [${1}]"; }
if address :count "ge" :comparator "i;ascii-numeric" "sender" "1" { if address :count "eq" :comparator "i;ascii-numeric" "sender" "1" { fileinto "n sender 1"; } elsif address :count "eq" :comparator "i;ascii-numeric" "sender" "2" { fileinto "n sender 2"; } else { fileinto "n sender more"; } }
if address :all :matches "reply-to" "*" { fileinto "a reply-to all [${1}]"; }
if address :localpart :matches "reply-to" "*" { fileinto "a reply-to localpart [${1}]"; }
if address :domain :matches "reply-to" "*" { fileinto "a reply-to domain [${1}]"; }
if address :user :matches "reply-to" "*" { fileinto "a reply-to user [${1}]"; }
if address :detail :matches "reply-to" "*" { fileinto "a reply-to detail [${1}]"; }
if address :count "ge" :comparator "i;ascii-numeric" "reply-to" "1" { if address :count "eq" :comparator "i;ascii-numeric" "reply-to" "1" { fileinto "n reply-to 1"; } elsif address :count "eq" :comparator "i;ascii-numeric" "reply-to" "2" { fileinto "n reply-to 2"; } else { fileinto "n reply-to more"; } }
if address :all :matches "resent-from" "*" { fileinto "a resent-from all [${1}]"; }
if address :localpart :matches "resent-from" "*" { fileinto "a resent-from localpart [${1}]"; }
if address :domain :matches "resent-from" "*" { fileinto "a resent-from domain [${1}]"; }
if address :user :matches "resent-from" "*" { fileinto "a resent-from user [${1}]"; }
if address :detail :matches "resent-from" "*" { fileinto "a resent-from detail [${1}]"; }
if address :count "ge" :comparator "i;ascii-numeric" "resent-from" "1" { if address :count "eq" :comparator "i;ascii-numeric" "resent-from" "1" { fileinto "n resent-from 1"; } elsif address :count "eq" :comparator "i;ascii-numeric" "resent-from" "2" { fileinto "n resent-from 2"; } else { fileinto "n resent-from more"; } }
if header :matches "subject" "*" { fileinto "h subject [${1}]"; }
if header :count "eq" :comparator "i;ascii-numeric" "subject" "2" { fileinto "c subject 2"; }
if header :matches "from" "*" { fileinto "h from [${1}]"; }
if header :count "eq" :comparator "i;ascii-numeric" "from" "2" { fileinto "c from 2"; }
if header :matches "to" "*" { fileinto "h to [${1}]"; }
if header :count "eq" :comparator "i;ascii-numeric" "to" "2" { fileinto "c to 2"; }
if header :matches "cc" "*" { fileinto "h cc [${1}]"; }
if header :count "eq" :comparator "i;ascii-numeric" "cc" "2" { fileinto "c cc 2"; }
if header :matches "list-id" "*" { fileinto "h list-id [${1}]"; }
if header :count "eq" :comparator "i;ascii-numeric" "list-id" "2" { fileinto "c list-id 2"; }
if header :matches "x-priority" "*" { fileinto "h x-priority [${1}]"; }
if header :count "eq" :comparator "i;ascii-numeric" "x-priority" "2" { fileinto "c x-priority 2"; }
if header :matches "date" "*" { fileinto "h date [${1}]"; }
if header :count "eq" :comparator "i;ascii-numeric" "date" "2" { fileinto "c date 2"; }
if header :matches "message-id" "*" { fileinto "h message-id [${1}]"; }
if header :count "eq" :comparator "i;ascii-numeric" "message-id" "2" { fileinto "c message-id 2"; }
if header :matches "content-type" "*" { fileinto "h content-type [${1}]"; }
if header :count "eq" :comparator "i;ascii-numeric" "content-type" "2" { fileinto "c content-type 2"; }
if header :matches "x-label" "*" { fileinto "h x-label [${1}]"; }
if header :count "eq" :comparator "i;ascii-numeric" "x-label" "2" { fileinto "c x-label 2"; }
if envelope :all :matches "from" "*" { fileinto "e from all [${1}]"; }
if envelope :localpart :matches "from" "*" { fileinto "e from localpart [${1}]"; }
if envelope :domain :matches "from" "*" { fileinto "e from domain [${1}]"; }
if envelope :user :matches "from" "*" { fileinto "e from user [${1}]"; }
if envelope :detail :matches "from" "*" { fileinto "e from detail [${1}]"; }
if envelope :all :matches "to" "*" { fileinto "e to all [${1}]"; }
if envelope :localpart :matches "to" "*" { fileinto "e to localpart [${1}]"; }
if envelope :domain :matches "to" "*" { fileinto "e to domain [${1}]"; }
if envelope :user :matches "to" "*" { fileinto "e to user [${1}]"; }
if envelope :detail :matches "to" "*" { fileinto "e to detail [${1}]"; }
