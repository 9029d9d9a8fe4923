"""Real HAProxy (Debian's, TCP mode, send-proxy-v2) in front of runmail's listeners: the
client's own address reaches the Received header, and implicit TLS passes through it."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from bench.mailhost_process import free_port
from mailboxes.models import Message
from mailboxes.selectors import blob_read
from mailhost import runner
from tests.support.servers import running
from tests.support.smtp import raw_transaction

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not installed"),
]

FRONT, CLIENT = "127.0.0.3", "127.0.0.5"


@pytest.fixture
def haproxy(live_settings, transactional_db, make_mailbox, tmp_path):
    make_mailbox("alice@example.org")
    live_settings.MAILHOST_PROXY_TRUSTED = [ipaddress.ip_network("127.0.0.1/32")]
    with running(runner.SMTP, runner.IMAP) as ports:
        fronts = {name: free_port(FRONT) for name in ("smtp", "imaps")}
        config = ["defaults", "    mode tcp", "    timeout connect 5s"]
        config += ["    timeout client 30s", "    timeout server 30s"]
        for name, port in fronts.items():
            config += [f"listen {name}", f"    bind {FRONT}:{port}"]
            config += [f"    server front1 127.0.0.1:{ports[name]} send-proxy-v2"]
        path = tmp_path / "haproxy.cfg"
        path.write_text("\n".join(config) + "\n")
        process = subprocess.Popen(
            [shutil.which("haproxy"), "-db", "-f", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection((FRONT, fronts["imaps"]), timeout=1).close()
                    break
                except OSError:
                    assert process.poll() is None, process.stderr.read()
                    assert time.monotonic() < deadline, "haproxy did not start"
                    time.sleep(0.1)
            yield fronts
        finally:
            process.terminate()
            process.wait(10)


def connect(port: int) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(10)
    sock.bind((CLIENT, 0))
    sock.connect((FRONT, port))
    return sock


def test_mail_through_haproxy_names_the_client_in_received(haproxy):
    reader = connect(haproxy["smtp"]).makefile("rb")
    sock = reader.raw._sock

    final = raw_transaction(
        sock,
        reader,
        helo=b"client.example.net",
        mail_from=b"x@remote.example",
        rcpt=b"alice@example.org",
        body=b"Subject: through HAProxy\r\n\r\nhi",
    )
    assert final.startswith(b"250 ")
    sock.close()
    received = blob_read(Message.objects.get().blob).split(b"\r\n", 1)[0]
    assert f"[{CLIENT}]".encode() in received


def test_implicit_tls_through_haproxy(haproxy, caplog):
    caplog.set_level("INFO", logger="protocols.proxy")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    tls = context.wrap_socket(connect(haproxy["imaps"]))
    assert tls.recv(1024).startswith(b"* OK")
    tls.sendall(b"a LOGOUT\r\n")
    tls.close()
    assert f"proxy_accepted listener=imaps peer=127.0.0.1 client={CLIENT}" in caplog.text
