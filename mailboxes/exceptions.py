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


class NoPermission(MailhostError):
    """The folder is another mailbox's, shared without the right this needs (RFC 4314)."""


class StorageError(MailhostError):
    """Our own fault: the blob or the database could not be written."""


class SieveScriptInvalid(MailhostError, ValueError):
    """A Sieve script that does not compile; `errors` are mailboxes.sieve's SieveError items
    (line, column, message)."""

    def __init__(self, errors: list) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(_describe(e) for e in self.errors) or "invalid script")


class SieveScriptActive(MailhostError):
    """The active script cannot be deleted (RFC 5804 2.10: NO (ACTIVE))."""


class SieveQuotaExceeded(QuotaExceeded):
    """Too many scripts or too large a script: `resource` is "MAXSCRIPTS" or "MAXSIZE", the
    RFC 5804 1.3 QUOTA/ sub-codes."""

    def __init__(self, resource: str, message: str) -> None:
        super().__init__(message)
        self.resource = resource


def _describe(error: object) -> str:
    line = getattr(error, "line", None)
    message = getattr(error, "message", str(error))
    return f"line {line}: {message}" if line else str(message)


class AppPasswordRequired(MailhostError):
    """A mail client's login to a mailbox with two-factor sign-in on, without an app password
    (the main password is for the web only then)."""
