"""Domain exceptions of the mail store. Each protocol maps them to its own replies."""


class MailhostError(Exception):
    """Base of every error the services raise on purpose."""


class InvalidAddress(MailhostError, ValueError):
    pass


class InvalidValue(MailhostError, ValueError):
    """A value the store refuses (an empty password, a negative quota...)."""


class AlreadyExists(MailhostError):
    pass


class NotFound(MailhostError):
    pass


class QuotaExceeded(MailhostError):
    pass


class KeywordLimit(MailhostError):
    """Keywords beyond a cap (per message, per folder, length): IMAP NO [LIMIT] (RFC 5530)."""


class FolderError(MailhostError):
    """A folder operation the rules forbid (delete INBOX, rename onto an existing name...)."""


class StorageError(MailhostError):
    """Our own fault: the blob or the database could not be written."""
