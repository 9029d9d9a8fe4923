"""The SMTP client against scripted and aiosmtpd peers: exact lines, extensions, TLS, AUTH."""

from __future__ import annotations

import random
import socket
import ssl
import struct
import threading
import time

import pytest
from aiosmtpd.smtp import AuthResult

from delivery import client
from delivery.client import Envelope, RecipientEnvelope, prepare_data
from delivery.dns import MXHost
from mailhost import tls
from tests.delivery.conftest import PeerHandler
from tests.support.tlsca import make_ca

EHLO_FULL = [
    "250-peer.test greets you",
    "250-PIPELINING",
    "250-SIZE 1000000",
    "250-8BITMIME",
    "250-SMTPUTF8",
    "250 DSN",
]


class ScriptedPeer:
    """A peer that reads a whole pipelined batch before answering a line of it.

    A client that waited for the MAIL reply before sending RCPT would hang here, so the
    transcript proves PIPELINING (RFC 2920 3.1) as well as the exact lines.
    """

    def __init__(self, address: str, port: int, ehlo: list[str], replies: dict[str, str]):
        self.ehlo = ehlo
        self.replies = replies
        self.lines: list[str] = []
        self.data = b""
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.settimeout(5)
        f = conn.makefile("rb")

        def send(*lines: str) -> None:
            conn.sendall("".join(line + "\r\n" for line in lines).encode())

        send("220 peer.test ESMTP")
        batch: list[str] = []
        while True:
            raw = f.readline()
            if not raw:
                break
            line = raw.decode().rstrip("\r\n")
            self.lines.append(line)
            verb = line.split(" ", 1)[0].split(":", 1)[0].upper()
            if verb == "EHLO":
                send(*self.ehlo)
            elif verb == "QUIT":
                send("221 bye")
                break
            elif verb in ("MAIL", "RCPT"):
                batch.append(line)
            elif verb == "DATA":
                for item in batch:
                    send(self.replies.get(item, "250 2.1.0 ok"))
                batch.clear()
                send("354 go ahead")
                while True:
                    chunk = f.readline()
                    self.data += chunk
                    if chunk in (b".\r\n", b""):
                        break
                send("250 2.0.0 taken")
        conn.close()
        self.sock.close()


@pytest.fixture
def smtp_settings(settings, peers):
    settings.MAILHOST_HOSTNAME = "mx.test.example"
    settings.MAILHOST_OUTBOUND_CONNECT_TIMEOUT = 2
    settings.MAILHOST_OUTBOUND_TIMEOUT = 5
    # Each transcript is one whole session, QUIT included (reuse: test_connection_reuse.py).
    settings.MAILHOST_OUTBOUND_IDLE_TIMEOUT = 0
    return settings


def envelope(**kwargs) -> Envelope:
    defaults = dict(
        mail_from="alice@example.org",
        recipients=[
            RecipientEnvelope("bob@remote.test", "FAILURE,DELAY", "rfc822;bob+tag@remote.test"),
            RecipientEnvelope("carol@remote.test"),
        ],
        data=b"Subject: hi\r\n\r\nbody\r\n",
        envid="ENV+1",
        ret="HDRS",
        body_8bit=True,
    )
    defaults.update(kwargs)
    return Envelope(**defaults)


HOST = MXHost("mx1.remote.test", 10, ("127.0.0.2",))


def test_pipelined_transaction_with_dsn_parameters(smtp_settings, peers):
    peer = ScriptedPeer(
        "127.0.0.2",
        peers.port,
        EHLO_FULL,
        {"RCPT TO:<carol@remote.test>": "550 5.1.1 carol is gone"},
    )
    env = envelope()
    size = len(prepare_data(env.data))
    result = client.deliver([HOST], env)
    peer.thread.join(5)
    assert peer.lines == [
        "EHLO mx.test.example",
        f"MAIL FROM:<alice@example.org> SIZE={size} BODY=8BITMIME RET=HDRS ENVID=ENV+2B1",
        "RCPT TO:<bob@remote.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;bob+2Btag@remote.test",
        "RCPT TO:<carol@remote.test>",
        "DATA",
        "QUIT",
    ]
    assert peer.data == b"Subject: hi\r\n\r\nbody\r\n.\r\n"
    assert str(result.replies["bob@remote.test"]) == "250 2.0.0 taken"
    assert result.replies["carol@remote.test"].code == 550
    assert result.replies["carol@remote.test"].enhanced == "5.1.1"
    assert result.replies["bob@remote.test"].remote == "mx1.remote.test"
    assert result.peer_dsn


def test_no_dsn_parameters_when_the_peer_lacks_dsn(smtp_settings, peers):
    ehlo = [line for line in EHLO_FULL if "DSN" not in line]
    ehlo[-1] = ehlo[-1].replace("250-", "250 ")
    peer = ScriptedPeer("127.0.0.2", peers.port, ehlo, {})
    result = client.deliver([HOST], envelope(body_8bit=False))
    peer.thread.join(5)
    assert peer.lines[1].startswith("MAIL FROM:<alice@example.org> SIZE=")
    assert "RET=" not in peer.lines[1] and "ENVID" not in peer.lines[1]
    assert peer.lines[2] == "RCPT TO:<bob@remote.test>"
    assert all(r.ok for r in result.replies.values())


def test_oversized_message_is_refused_before_sending(smtp_settings, peers):
    ehlo = [line.replace("SIZE 1000000", "SIZE 10") for line in EHLO_FULL]
    peer = ScriptedPeer("127.0.0.2", peers.port, ehlo, {})
    result = client.deliver([HOST], envelope())
    peer.thread.join(5)
    assert {str(r) for r in result.replies.values()} == {
        "552 5.3.4 message size exceeds the limit of mx1.remote.test"
    }
    assert not any(line.startswith("MAIL") for line in peer.lines)


def test_dot_stuffing_and_line_endings():
    assert prepare_data(b".a\n..b\nc") == b"..a\r\n...b\r\nc\r\n.\r\n"


def test_opportunistic_starttls(smtp_settings, peers, blob_dir):
    sessions = []

    class TLSHandler(PeerHandler):
        async def handle_DATA(self, server, session, envelope):
            sessions.append(session.ssl is not None)
            return await super().handle_DATA(server, session, envelope)

    handler = peers.start("127.0.0.2", TLSHandler(), tls_context=tls.server_context())
    result = client.deliver([HOST], envelope(recipients=[RecipientEnvelope("bob@remote.test")]))
    assert result.replies["bob@remote.test"].ok
    assert sessions == [True]  # a self-signed certificate is fine for opportunistic TLS
    assert len(handler.received) == 1


def test_greeting_4xx_moves_on_to_the_next_mx(smtp_settings, peers):
    lines = []
    sock = socket.socket()
    sock.bind(("127.0.0.2", peers.port))
    sock.listen(1)

    def greet_busy():
        conn, _ = sock.accept()
        conn.settimeout(5)
        conn.sendall(b"421 4.3.2 too busy\r\n")
        lines.append(conn.makefile("rb").readline())
        conn.close()
        sock.close()

    thread = threading.Thread(target=greet_busy, daemon=True)
    thread.start()
    good = peers.start("127.0.0.4")
    hosts = [HOST, MXHost("mx2.remote.test", 20, ("127.0.0.4",))]
    result = client.deliver(hosts, envelope(recipients=[RecipientEnvelope("bob@remote.test")]))
    thread.join(5)
    assert lines == [b"QUIT\r\n"]  # RFC 5321 3.1: the client QUITs after a refusal
    assert result.replies["bob@remote.test"].ok
    assert result.replies["bob@remote.test"].remote == "mx2.remote.test"
    assert len(good.received) == 1


def test_all_mx_down_is_a_temporary_failure(smtp_settings, peers):
    hosts = [MXHost("mx1.remote.test", 10, ("127.0.0.3",))]
    result = client.deliver(hosts, envelope())
    replies = set(result.replies.values())
    assert len(replies) == 1
    [reply] = replies
    assert reply.code == 451 and reply.enhanced == "4.4.1"


def test_relayhost_with_auth_takes_every_domain_in_one_connection(
    smtp_settings, peers, settings, make_mailbox, dns_server
):
    from delivery.jobs import deliver_message
    from delivery.models import OutboundRecipient
    from tests.delivery.test_delivery import spool

    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((mechanism, auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"relay-secret")

    peer = peers.start("127.0.0.2", authenticator=authenticator, auth_require_tls=False)
    settings.MAILHOST_RELAYHOST = ("127.0.0.2", peers.port)
    settings.MAILHOST_RELAYHOST_USER = "relayuser"
    settings.MAILHOST_RELAYHOST_PASSWORD = "relay-secret"
    make_mailbox("alice@example.org")
    message = spool(["bob@remote.test", "zed@other.test"])
    deliver_message(message.id)
    assert logins == [("PLAIN", b"relayuser", b"relay-secret")]
    assert [sorted(r.rcpt_tos) for r in peer.received] == [["bob@remote.test", "zed@other.test"]]
    assert set(OutboundRecipient.objects.values_list("status", flat=True)) == {"delivered"}
    assert dns_server.queries == []  # a relay given as an address needs no DNS


def test_idna_domains_go_out_as_a_labels():
    assert client.wire_address("bob@bücher.test") == "bob@xn--bcher-kva.test"
    assert client.wire_address("bob@remote.test") == "bob@remote.test"
    assert client.wire_address("jürgen@bücher.test") == "jürgen@xn--bcher-kva.test"


def test_auth_needs_tls_when_it_is_required(smtp_settings, peers):
    handler = peers.start("127.0.0.2", auth_require_tls=False)
    result = client.deliver([HOST], envelope(), auth=("user", "secret"), require_tls=True)
    assert {r.enhanced for r in result.replies.values()} == {"4.7.4"}
    assert handler.received == []


def test_an_unreachable_address_is_skipped_for_a_while(smtp_settings, peers):
    down = [MXHost("mx1.remote.test", 10, ("127.0.0.3",))]
    first = client.deliver(down, envelope())
    assert "Connection refused" in str(next(iter(first.replies.values())))
    peers.start("127.0.0.3")  # it comes back, but we do not knock again at once
    second = client.deliver(down, envelope())
    assert "unreachable moments ago" in str(next(iter(second.replies.values())))
    client.forget_unreachable()
    third = client.deliver(down, envelope(recipients=[RecipientEnvelope("bob@remote.test")]))
    assert third.replies["bob@remote.test"].ok


def test_smtputf8_only_when_the_peer_offers_it_or_the_message_needs_it(smtp_settings, peers):
    ehlo = [line for line in EHLO_FULL if "SMTPUTF8" not in line]
    ascii_peer = ScriptedPeer("127.0.0.2", peers.port, ehlo, {})
    plain = envelope(smtputf8=True, recipients=[RecipientEnvelope("bob@bücher.test")])
    result = client.deliver([HOST], plain)
    ascii_peer.thread.join(5)
    assert result.replies["bob@bücher.test"].ok  # asked for SMTPUTF8, needed none of it
    assert "SMTPUTF8" not in ascii_peer.lines[1]
    assert ascii_peer.lines[2] == "RCPT TO:<bob@xn--bcher-kva.test>"

    client.forget_unreachable()
    refusing_peer = ScriptedPeer("127.0.0.2", peers.port, ehlo, {})
    utf8 = envelope(smtputf8=True, recipients=[RecipientEnvelope("jürgen@bücher.test")])
    result = client.deliver([HOST], utf8)
    refusing_peer.thread.join(5)  # it closes its listening socket when the session ends
    assert str(result.replies["jürgen@bücher.test"]).startswith("553 5.6.7")

    utf8_peer = ScriptedPeer("127.0.0.2", peers.port, EHLO_FULL, {})
    result = client.deliver([HOST], utf8)
    utf8_peer.thread.join(5)
    assert result.replies["jürgen@bücher.test"].ok
    assert utf8_peer.lines[1].endswith(" SMTPUTF8 RET=HDRS ENVID=ENV+2B1")
    assert utf8_peer.lines[2].startswith("RCPT TO:<jürgen@xn--bcher-kva.test>")


# --- long lines: Postfix's smtp_line_length_limit (998) --------------------------------------


def test_a_long_body_line_is_broken_with_crlf_space_as_postfix_does():
    line = b"x" * 2500
    assert client.break_long_lines(b"S: a\r\n\r\n" + line + b"\r\n", 998) == (
        b"S: a\r\n\r\n" + b"x" * 998 + b"\r\n " + b"x" * 997 + b"\r\n " + b"x" * 505 + b"\r\n"
    )
    # Exactly at the limit: untouched; 0: never broken.
    exact = b"S: a\r\n\r\n" + b"y" * 998 + b"\r\n"
    assert client.break_long_lines(exact, 998) == exact
    assert client.break_long_lines(b"\r\n" + line + b"\r\n", 0) == b"\r\n" + line + b"\r\n"


def test_a_long_header_line_is_folded_at_white_space_else_broken():
    words = b" ".join([b"word%03d" % i for i in range(200)])  # 1599 octets
    folded = client.break_long_lines(b"X-Long: " + words + b"\r\n\r\nbody\r\n", 998)
    head, _, body = folded.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert len(lines) == 2 and all(len(x) <= 998 for x in lines)
    assert lines[1].startswith(b" word")  # folded before a space, no octet added
    assert b"".join(lines) == b"X-Long: " + words  # unfolding gives the field back
    assert body == b"body\r\n"
    # No white space to fold at: Postfix's CRLF SPACE.
    token = b"X-Token: " + b"t" * 1500
    assert client.break_long_lines(token + b"\r\n\r\n", 998) == (
        token[:998] + b"\r\n " + token[998:] + b"\r\n\r\n"
    )


def test_a_break_never_splits_a_utf8_character():
    line = b"a" * 997 + "é".encode() * 10  # the 998th octet starts a 2-octet character
    broken = client.break_long_lines(b"\r\n" + line + b"\r\n", 998)
    first, second = broken.split(b"\r\n")[1:3]
    assert first == b"a" * 997 and second == b" " + "é".encode() * 10
    first.decode(), second.decode()


def test_no_line_over_998_octets_reaches_the_peer(smtp_settings, peers):
    peer = ScriptedPeer("127.0.0.2", peers.port, EHLO_FULL, {})
    raw = (
        b"Subject: " + b"long subject " * 100 + b"\r\n\r\n"
        b"." + b"d" * 1999 + b"\r\n"  # a dot line: stuffed once, at its start only
        b"short\r\n"
    )
    result = client.deliver([HOST], envelope(data=raw))
    peer.thread.join(5)
    assert all(r.ok for r in result.replies.values())
    lines = peer.data.split(b"\r\n")
    # RFC 5321 4.5.3.1.6: the dot added by dot-stuffing does not count.
    assert max(len(x[1:] if x.startswith(b"..") else x) for x in lines) == 998
    assert lines[2:] == [b"", b".." + b"d" * 997, b" " + b"d" * 997, b" ddddd", b"short", b".", b""]
    assert lines[0] + lines[1] == b"Subject: " + b"long subject " * 100


def test_reads_and_writes_wait_in_the_kernel_and_time_out_there(settings):
    """The connection's socket blocks, with SO_RCVTIMEO and SO_SNDTIMEO as its timeout (no
    poll() before each call: each one gave up the GIL and waited to take it back); a peer
    that stops answering, or stops reading, still times out."""
    settings.MAILHOST_OUTBOUND_TIMEOUT = 0.3
    listener = socket.create_server(("127.0.0.1", 0))
    sock = socket.create_connection(listener.getsockname())
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer, _ = listener.accept()
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    conn = client.Connection("127.0.0.1", 0, remote_name="silent.test", sock=sock)
    try:
        assert conn.sock.gettimeout() is None
        for option in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO):
            timeval = conn.sock.getsockopt(socket.SOL_SOCKET, option, struct.calcsize("ll"))
            assert struct.unpack("ll", timeval) == (0, 300_000)
        with pytest.raises(TimeoutError):
            conn.read_reply()  # the peer says nothing
        with pytest.raises(TimeoutError):
            conn.send(b"x" * (16 << 20))  # the peer reads nothing
    finally:
        conn.close()
        peer.close()
        listener.close()


@pytest.mark.parametrize("silent", ["handshake", "after"])
def test_a_peer_silent_under_tls_times_out(settings, tmp_path, silent):
    """After STARTTLS the timeout holds too: a peer that says nothing during the handshake, or
    after it, does not hold the delivery thread (a blocking socket's SO_RCVTIMEO cannot time
    out a TLS read: the ssl module retries its SSL_ERROR_WANT_READ)."""
    settings.MAILHOST_OUTBOUND_TIMEOUT = 0.5
    ca = make_ca(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(ca.cert_path, ca.key_path)
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def peer() -> None:
        sock, _ = listener.accept()
        sock.sendall(b"220 peer ready\r\n")
        sock.makefile("rb").readline()  # STARTTLS
        sock.sendall(b"220 go ahead\r\n")
        if silent == "after":
            sock = server_context.wrap_socket(sock, server_side=True)
        done.wait(10)
        sock.close()

    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    conn = client.Connection(
        "127.0.0.1",
        0,
        remote_name="silent.test",
        sock=socket.create_connection(listener.getsockname()),
    )
    try:
        assert conn.read_reply().code == 220
        started = time.monotonic()
        with pytest.raises((TimeoutError, ssl.SSLError)):
            conn.starttls(ca.client_context(), "localhost")
            conn.command("EHLO client.test")
        assert time.monotonic() - started < 5
    finally:
        done.set()
        conn.close()
        thread.join(5)
        listener.close()


def test_throttling_is_read_as_the_enhanced_code_says():
    """is_throttling looks at the text before the enhanced code's regular expression: the
    same answer as reply.enhanced alone for any code and text, and the expression is not
    tried for a text that cannot start a 4.7.x code (every ordinary reply)."""
    import random

    rng = random.Random(3463)
    texts = ["4.7.0", "4.7.", "4.7.1x", "4.7.12 slow", "4.7.1234", "4.70.1", "5.7.1", "2.0.0", ""]
    for _ in range(2000):
        text = rng.choice(texts) + rng.choice(["", " ", " try later", "\tx"])
        reply = client.Reply(rng.choice([250, 354, 421, 450, 451, 550]), text)
        expected = reply.code == 421 or reply.enhanced.startswith("4.7.")
        assert client.is_throttling(reply) is expected, reply
    matched = []
    real = client._ENHANCED

    class Counting:
        def match(self, text):  # noqa: ANN001, ANN202
            matched.append(text)
            return real.match(text)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(client, "_ENHANCED", Counting())
        assert not client.is_throttling(client.Reply(250, "2.0.0 OK"))
        assert client.is_throttling(client.Reply(451, "4.7.1 slow down"))
    assert matched == ["4.7.1 slow down"]


def test_replies_read_as_the_general_loop_reads_them(settings):
    """read_reply's path for a reply whose first line is its last gives what _read_lines
    gives for it (the same text, code, throttling), and multi-line, bare-LF, odd and
    closed replies are still read by the loop."""
    listener = socket.create_server(("127.0.0.1", 0))
    sock = socket.create_connection(listener.getsockname())
    peer, _ = listener.accept()
    fast = client.Connection("127.0.0.1", 0, remote_name="peer.test", sock=sock)
    replies = [
        b"250 2.0.0 OK\r\n",
        b"250 \r\n",
        b"250 OK\n",
        b"250 OK \r\r\n",
        b"354 End data with <CR><LF>.<CR><LF>\r\n",
        "250 2.0.0 d\u00e9j\u00e0 vu\r\n".encode(),
        b"250 bad \xff octet\r\n",
        b"421 4.7.0 slow down\r\n",
        b"451 4.7.1 greylisted\r\n",
        b"550-5.1.1 no such\r\n550 5.1.1 user\r\n",
        b"250-first\n250 last\n",
        b"250\r\n",
    ]
    try:
        for raw in replies:
            peer.sendall(raw)
            got = fast.read_reply()
            expected = client.Connection._read_lines(_LinesOf(raw), raw.split(b"\n")[0] + b"\n")
            assert (got.code, got.text, got.remote) == (expected.code, expected.text, "peer.test")
            assert fast.throttled is (got.code == 421 or got.text.startswith("4.7."))
            fast.throttled = False
        peer.sendall(b"2x0 nonsense\r\n")
        with pytest.raises(client.SMTPError, match="bad reply"):
            fast.read_reply()
        peer.close()
        with pytest.raises(client.SMTPError, match="closed by the peer"):
            fast.read_reply()
    finally:
        fast.close()
        listener.close()


class _LinesOf:
    """What _read_lines reads after a reply's first line: the rest of `raw`, line by line."""

    def __init__(self, raw: bytes) -> None:
        self.remote = "peer.test"
        self.file = _Lines(raw.split(b"\n", 1)[1])


class _Lines:
    def __init__(self, rest: bytes) -> None:
        self.lines = [line + b"\n" for line in rest.split(b"\n") if line]

    def readline(self, limit: int) -> bytes:
        return self.lines.pop(0) if self.lines else b""


@pytest.mark.parametrize("limit", [0, 6, 998])
def test_prepared_data_is_the_same_without_rewriting(settings, limit):
    """prepare_data sends a message of CRLF lines, none too long or starting with a dot, as
    it is, and that is what rewriting it gives (_prepared_anew); random messages of CR, LF,
    dots and text, with and without those, are prepared alike either way."""
    settings.MAILHOST_OUTBOUND_LINE_LENGTH_LIMIT = limit
    rng = random.Random(limit)
    usual = b"Subject: x\r\n\r\nline one\r\nline two\r\n"
    assert prepare_data(usual) == client._prepared_anew(usual, limit)
    if limit != 6:
        assert prepare_data(usual) == usual + b".\r\n"
    for _ in range(3000):
        pieces = [rng.choice([b"\r\n", b"\r", b"\n", b".", b"ab", b"abcdefgh", b" "])]
        pieces += [
            rng.choice([b"\r\n", b"\r\n", b"\r\n", b"\r", b"\n", b".", b"ab", b"abcdefgh"])
            for _ in range(rng.randrange(12))
        ]
        raw = b"".join(pieces)
        assert prepare_data(raw) == client._prepared_anew(raw, limit), raw
