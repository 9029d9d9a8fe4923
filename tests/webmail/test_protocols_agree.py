"""What the webmail does, IMAP and POP3 see at once, and the other way round: one store,
one set of services. Real imaplib and poplib sessions over STARTTLS against the listeners."""

from __future__ import annotations

import imaplib
import poplib
import re
import ssl

import pytest

from mailboxes import services
from mailboxes.models import Blob, Message
from mailhost import runner
from tests.support.servers import running
from tests.webmail.conftest import folder, make_raw, release_server_connections

pytestmark = pytest.mark.django_db(transaction=True)


def tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the listeners' self-signed test certificate
    return context


@pytest.fixture
def ports(live_settings):
    with running(runner.IMAP, runner.POP3) as ports:
        yield ports
    release_server_connections()


def imap(ports, address: str, password: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", ports["imap"])
    client.starttls(ssl_context=tls())
    client.login(address, password)
    return client


def test_webmail_and_imap_see_the_same_mailbox(ports, web, alice, inbox):
    services.message_deliver(raw=make_raw(subject="Shared"), recipients=["alice@example.org"])
    projects = services.folder_create(mailbox=alice, name="Projects")
    client = imap(ports, "alice@example.org", "secret")
    try:
        client.select("INBOX")
        assert client.uid("FETCH", "1", "(FLAGS)")[1][0].decode().count("\\Seen") == 0
        # Webmail opens it: IMAP sees \Seen.
        assert web.get(f"/m/{inbox.pk}/1/").status_code == 200
        client.noop()
        flags = client.uid("FETCH", "1", "(FLAGS)")[1][0].decode()
        assert "\\Seen" in flags
        # IMAP flags it: the webmail list shows the flag.
        client.uid("STORE", "1", "+FLAGS", "(\\Flagged)")
        assert web.get(f"/f/{inbox.pk}/").context["rows"][0]["flagged"]
        # Webmail moves it: IMAP finds it in Projects and no longer in INBOX.
        web.post(
            f"/f/{inbox.pk}/bulk/", {"action": "move", "uid": ["1"], "target": str(projects.pk)}
        )
        status = client.status("Projects", "(MESSAGES)")[1][0].decode()
        assert "MESSAGES 1" in status
        client.noop()
        assert client.uid("SEARCH", "ALL")[1] == [b""]
    finally:
        client.logout()


def test_webmail_send_is_seen_over_imap_and_pop3(ports, web, alice, bob):
    response = web.post(
        "/compose/",
        {"to": "bob@example.org", "subject": "Over the wire", "body": "hi", "action": "send"},
    )
    assert response.status_code == 302
    client = imap(ports, "alice@example.org", "secret")
    try:
        client.select("Sent", readonly=True)
        data = client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]
        assert b"Over the wire" in data[0][1] and b"\\Seen" in data[0][0]
    finally:
        client.logout()
    pop = poplib.POP3("127.0.0.1", ports["pop3"])
    try:
        pop.stls(context=tls())
        pop.user("bob@example.org")
        pop.pass_("hunter2")
        count, _ = pop.stat()
        assert count == 1
        lines = pop.retr(1)[1]
        assert b"Subject: Over the wire" in lines
    finally:
        pop.quit()
    assert Message.objects.get(folder=folder(bob, "INBOX")).subject == "Over the wire"


def test_inline_and_file_blobs_read_alike(ports, web, alice, inbox, settings, blob_dir):
    """A message stored in its Blob row (MAILHOST_BLOB_INLINE_MAX) and one in a file: IMAP
    FETCH BODY[] of both at once, POP3 RETR and the webmail's raw view give the same bytes."""
    settings.MAILHOST_BLOB_INLINE_MAX = 4096
    small = make_raw(subject="Small", text="short\n").replace(b"\n", b"\r\n")
    big = make_raw(subject="Big", text="long line of text\n" * 400).replace(b"\n", b"\r\n")
    assert len(small) <= 4096 < len(big)
    for raw in (small, big):
        services.message_deliver(raw=raw, recipients=["alice@example.org"])
    kinds = [Blob.name_is_inline(m.blob.name) for m in Message.objects.order_by("uid")]
    assert kinds == [True, False]
    assert len([p for p in blob_dir.rglob("*") if p.is_file()]) == 1
    client = imap(ports, "alice@example.org", "secret")
    try:
        client.select("INBOX", readonly=True)
        data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")[1]
        assert [item[1] for item in data if isinstance(item, tuple)] == [small, big]
        size = client.uid("FETCH", "1", "(RFC822.SIZE)")[1][0]
        assert re.search(rb"RFC822\.SIZE %d[ )]" % len(small), size)
    finally:
        client.logout()
    pop = poplib.POP3("127.0.0.1", ports["pop3"])
    try:
        pop.stls(context=tls())
        pop.user("alice@example.org")
        pop.pass_("secret")
        for number, raw in enumerate((small, big), start=1):
            assert b"\r\n".join(pop.retr(number)[1]) + b"\r\n" == raw
    finally:
        pop.quit()
    for uid, raw in enumerate((small, big), start=1):
        assert web.get(f"/m/{inbox.pk}/{uid}/raw/").content == raw
        assert web.get(f"/m/{inbox.pk}/{uid}/").status_code == 200


def test_webmail_stems_and_imap_keeps_to_substrings(ports, web, alice, inbox):
    """The webmail's search for "running" finds a message holding "runs" alone (its stem);
    IMAP's SEARCH BODY "running" does not (RFC 9051 6.4.4: substrings), the same index asked."""
    from mailboxes import fulltext

    services.message_deliver(
        raw=make_raw(subject="Morning", text="She runs every morning."),
        recipients=["alice@example.org"],
    )
    services.message_deliver(
        raw=make_raw(subject="Jobs", text="The job is rerunning tonight."),
        recipients=["alice@example.org"],
    )
    fulltext.index_all()
    rows = web.get("/search/?q=running&in=body").context["rows"]
    assert [row["subject"] for row in rows] == ["Jobs", "Morning"]
    client = imap(ports, "alice@example.org", "secret")
    try:
        client.select("INBOX")
        assert client.uid("SEARCH", "BODY", "running") == ("OK", [b"2"])
        assert client.uid("SEARCH", "BODY", "runs") == ("OK", [b"1"])
        assert client.uid("SEARCH", "TEXT", "running") == ("OK", [b"2"])
    finally:
        client.logout()
