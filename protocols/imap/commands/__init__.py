"""Command handlers, one module per family; HANDLERS maps a command name to its coroutine."""

from __future__ import annotations

from protocols.imap.commands import (
    acl,
    auth,
    contexts,
    fetchsearch,
    idle,
    mailbox,
    message,
    metadata,
    multisearch,
    notify,
    quota,
    select,
    sortthread,
)

HANDLERS = {
    "CAPABILITY": auth.capability,
    "NOOP": auth.noop,
    "LOGOUT": auth.logout,
    "ID": auth.id_command,
    "ENABLE": auth.enable,
    "STARTTLS": auth.starttls,
    "LOGIN": auth.login,
    "AUTHENTICATE": auth.authenticate,
    "UNAUTHENTICATE": auth.unauthenticate,
    "COMPRESS": auth.compress,
    "SELECT": select.select,
    "EXAMINE": select.select,
    "CLOSE": select.close,
    "UNSELECT": select.unselect,
    "CHECK": select.check,
    "CREATE": mailbox.create,
    "DELETE": mailbox.delete,
    "RENAME": mailbox.rename,
    "SUBSCRIBE": mailbox.subscribe,
    "UNSUBSCRIBE": mailbox.subscribe,
    "LIST": mailbox.list_command,
    "LSUB": mailbox.list_command,
    "NAMESPACE": mailbox.namespace,
    "STATUS": mailbox.status,
    "APPEND": message.append,
    "STORE": message.store,
    "COPY": message.copy,
    "MOVE": message.copy,
    "REPLACE": message.replace,
    "EXPUNGE": message.expunge,
    "UID EXPUNGE": message.expunge,
    "IDLE": idle.idle,
    "FETCH": fetchsearch.fetch,
    "SEARCH": fetchsearch.search,
    "ESEARCH": multisearch.esearch,
    "SORT": sortthread.sort,
    "THREAD": sortthread.thread,
    "GETQUOTA": quota.getquota,
    "GETQUOTAROOT": quota.getquotaroot,
    "SETQUOTA": quota.setquota,
    **acl.HANDLERS,
    **metadata.HANDLERS,
    **notify.HANDLERS,
    **contexts.HANDLERS,
}

# What the session sends between commands for NOTIFY's events (RFC 5465): the session's
# only other door into the command modules.
UPDATES = {
    "notify": notify.flush,
    "notify_fetch": notify.new_messages_fetch,
    "contexts": contexts.refresh,  # RFC 5267 4.3: SEARCH/SORT RETURN (UPDATE)
}
