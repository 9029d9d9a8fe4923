"""Command handlers, one module per family; HANDLERS maps a command name to its coroutine."""

from __future__ import annotations

from protocols.imap.commands import (
    auth,
    fetchsearch,
    idle,
    mailbox,
    message,
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
    "EXPUNGE": message.expunge,
    "UID EXPUNGE": message.expunge,
    "IDLE": idle.idle,
    "FETCH": fetchsearch.fetch,
    "SEARCH": fetchsearch.search,
    "SORT": sortthread.sort,
    "THREAD": sortthread.thread,
}
