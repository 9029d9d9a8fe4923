require ["enotify", "fileinto"];
if valid_notify_method "mailto:alice@example.org" { fileinto "mailto-valid"; }
if valid_notify_method "xmpp:alice@example.org" { fileinto "xmpp-valid"; }
if valid_notify_method ["mailto:alice@example.org", "mailto:"] { fileinto "empty-mailto"; }
if notify_method_capability "mailto:alice@example.org" "online" "maybe" { fileinto "online-maybe"; }
