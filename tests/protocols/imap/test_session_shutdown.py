"""Session.shutdown() (SIGTERM, a password change) on a connection the client has closed."""

from __future__ import annotations

from protocols.imap.session import Session


class _ClosedTransport:
    def is_closing(self) -> bool:
        return True


class _Writer:
    """A StreamWriter on a transport closed by the client, as uvloop's behaves: its write
    raises (asyncio's drops the bytes)."""

    transport = _ClosedTransport()

    def __init__(self) -> None:
        self.closed = False

    def get_extra_info(self, name: str) -> None:
        return None

    def write(self, data: bytes) -> None:
        raise RuntimeError("unable to perform operation on <TCPTransport closed=True>")

    def close(self) -> None:
        self.closed = True


def test_shutdown_of_a_session_whose_client_has_gone_writes_no_bye():
    # Its task has not yet run to see the end of input: the server's shutdown reaches it
    # first, and must go on to the other sessions rather than raise.
    session = Session(None, None, _Writer(), tls=False, starttls_allowed=True)
    session.awaiting_command = True
    session.shutdown()
    assert session.said_bye
    assert session.writer.closed
