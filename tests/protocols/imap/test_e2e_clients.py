"""End to end with real clients over real TLS: Python's imaplib and the IMAPClient package."""

from __future__ import annotations

import imaplib
import ssl
import time
from datetime import UTC, datetime

import imapclient
import pytest

from mailboxes import selectors
from tests.protocols.imap.conftest import deliver_in_thread

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = (
    b"From: Bob <bob@example.net>\r\n"
    b"To: Alice <alice@example.org>\r\n"
    b"Subject: Quarterly report\r\n"
    b"Date: Tue, 5 Mar 2024 10:00:00 +0000\r\n"
    b"Message-ID: <q1@example.net>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Numbers attached.\r\n"
    b"--b1\r\n"
    b"Content-Type: application/octet-stream; name=data.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"AAECAw==\r\n"
    b"--b1--\r\n"
)


def insecure() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.fixture
def tls_only(imap, settings):
    """Plaintext auth off, as in production: LOGIN works only over TLS."""
    settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = False
    return imap


def test_imaplib_every_command_over_implicit_tls(tls_only):
    port = tls_only["ports"]["imaps"]
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=insecure())
    assert "AUTH=PLAIN" in m.capabilities
    typ, _ = m.authenticate("PLAIN", lambda _: b"\0alice@example.org\0secret")
    assert typ == "OK"
    assert "MOVE" in m.capabilities or m.capability()[0] == "OK"
    assert m.enable("CONDSTORE")[0] == "OK"
    assert m.namespace() == ("OK", [b'(("" "/")) (("Other Users/" "/")) (("Shared/" "/"))'])
    typ, data = m._simple_command("ID", '("name" "imaplib")')
    assert typ == "OK"
    assert m.create("Projects/2024")[0] == "OK"
    assert m.rename("Projects/2024", "Projects/Done")[0] == "OK"
    assert m.subscribe("Projects/Done")[0] == "OK"
    typ, listing = m.list('""', "Projects/*")
    assert listing == [b'(\\HasNoChildren) "/" "Projects/Done"']
    assert m.unsubscribe("Projects/Done")[0] == "OK"
    assert m.lsub('""', "Projects/*") == ("OK", [None])
    assert m.delete("Projects/Done")[0] == "OK"
    when = imaplib.Time2Internaldate(datetime(2024, 3, 5, 10, 0, tzinfo=UTC))
    typ, data = m.append("INBOX", "(\\Flagged)", when, MESSAGE)
    assert typ == "OK" and b"APPENDUID" in data[0]
    typ, data = m.status("INBOX", "(MESSAGES UNSEEN SIZE HIGHESTMODSEQ)")
    assert data[0].startswith(b"INBOX (MESSAGES 1 UNSEEN 1 SIZE %d HIGHESTMODSEQ " % len(MESSAGE))
    assert m.select("INBOX", readonly=True) == ("OK", [b"1"])
    assert m.unselect()[0] == "OK"
    assert m.select("INBOX") == ("OK", [b"1"])
    typ, data = m.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
    assert typ == "OK"
    text = data[0] if isinstance(data[0], bytes) else data[0][0]
    assert b'"Quarterly report"' in text and b"\\Flagged" in text
    assert b'"05-Mar-2024 10:00:00 +0000"' in text
    typ, data = m.fetch("1", "(BODY.PEEK[1] BINARY[2] BINARY.SIZE[2])")
    assert data[0][1] == b"Numbers attached."
    typ, data = m.uid("FETCH", "1", "(BODY[])")
    assert data[0][1] == MESSAGE
    typ, data = m.fetch("1", "(FLAGS)")
    assert b"\\Seen" in data[0]
    assert m.search(None, "FROM", '"bob"', "SUBJECT", '"report"') == ("OK", [b"1"])
    assert m.uid("SEARCH", "BODY", "Numbers") == ("OK", [b"1"])
    assert m.store("1", "+FLAGS", "(\\Answered)")[0] == "OK"
    assert m.uid("STORE", "1", "-FLAGS.SILENT", "(\\Flagged)")[0] == "OK"
    assert m.copy("1", "Archive")[0] == "OK"
    typ, data = m.uid("MOVE", "1", "Trash")
    assert typ == "OK"
    assert m.check()[0] == "OK"
    assert m.noop()[0] == "OK"
    assert m.select("Archive") == ("OK", [b"1"])
    assert m.store("1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert m.expunge() == ("OK", [b"1"])
    assert m.select("Trash")[0] == "OK"
    assert m.uid("STORE", "1", "+FLAGS", "(\\Deleted)")[0] == "OK"
    assert m.uid("EXPUNGE", "1")[0] == "OK"
    assert m.close()[0] == "OK"
    assert m.logout()[0] == "BYE"


def test_imaplib_starttls_on_the_plain_port(tls_only):
    m = imaplib.IMAP4("127.0.0.1", tls_only["ports"]["imap"])
    assert "LOGINDISABLED" in m.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        m.login("alice@example.org", "secret")
    m.starttls(ssl_context=insecure())
    assert m.login("alice@example.org", "secret")[0] == "OK"
    assert m.select("INBOX")[0] == "OK"
    assert m.logout()[0] == "BYE"


def test_imapclient_every_command(tls_only):
    port = tls_only["ports"]["imaps"]
    c = imapclient.IMAPClient("127.0.0.1", port=port, ssl=True, ssl_context=insecure())
    c.login("alice@example.org", "secret")
    caps = c.capabilities()
    assert b"IDLE" in caps and b"QRESYNC" in caps and b"ID" in caps
    assert c.id_({"name": "IMAPClient"}) == ((b"name", b"Mailhost", b"vendor", b"Mailhost"),)
    assert c.enable("CONDSTORE", "UTF8=ACCEPT") == [b"CONDSTORE", b"UTF8=ACCEPT"]
    assert c.namespace().personal == (("", "/"),)
    assert c.find_special_folder(imapclient.imapclient.SENT) == "Sent"
    c.create_folder("Reisen/Entwürfe")
    assert c.folder_exists("Reisen/Entwürfe")
    c.rename_folder("Reisen/Entwürfe", "Reisen/Fertig")
    c.subscribe_folder("Reisen/Fertig")
    assert "Reisen/Fertig" in [name for _f, _d, name in c.list_sub_folders()]
    c.unsubscribe_folder("Reisen/Fertig")
    c.delete_folder("Reisen/Fertig")
    result = c.append(
        "INBOX", MESSAGE, flags=[imapclient.imapclient.SEEN], msg_time=datetime(2024, 3, 5, 11, 0)
    )
    assert b"APPENDUID" in result
    status = c.folder_status("INBOX", ["MESSAGES", "UIDNEXT", "HIGHESTMODSEQ"])
    assert status[b"MESSAGES"] == 1 and status[b"UIDNEXT"] == 2
    info = c.select_folder("INBOX")
    assert info[b"EXISTS"] == 1 and b"HIGHESTMODSEQ" in info
    data = c.fetch(
        [1], ["ENVELOPE", "BODYSTRUCTURE", "FLAGS", "INTERNALDATE", "RFC822.SIZE", "MODSEQ"]
    )
    envelope = data[1][b"ENVELOPE"]
    assert envelope.subject == b"Quarterly report"
    assert envelope.from_[0].mailbox == b"bob" and envelope.from_[0].host == b"example.net"
    assert data[1][b"RFC822.SIZE"] == len(MESSAGE)
    assert data[1][b"BODYSTRUCTURE"].is_multipart
    assert c.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"] == MESSAGE
    assert c.search(["SUBJECT", "Quarterly", "SEEN"]) == [1]
    assert c.search("UNSEEN") == []
    assert c.add_flags([1], [imapclient.imapclient.FLAGGED])[1] == (
        b"\\Seen",
        b"\\Flagged",
        b"\\Recent",
    )
    assert c.remove_flags([1], [imapclient.imapclient.SEEN])[1] == (b"\\Flagged", b"\\Recent")
    assert c.set_flags([1], [b"$Label1"])[1] == (b"$Label1", b"\\Recent")
    assert c.get_flags([1]) == {1: (b"$Label1", b"\\Recent")}
    c.copy([1], "Archive")
    highest = c.folder_status("INBOX", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"]
    c.add_flags([1], [b"$Label2"])
    changed = c.fetch([1], ["FLAGS"], modifiers=[f"CHANGEDSINCE {highest}"])
    assert list(changed) == [1]
    c.move([1], "Trash")
    assert c.select_folder("INBOX")[b"EXISTS"] == 0
    c.select_folder("Archive")
    c.delete_messages([1])
    assert c.expunge()
    c.select_folder("Trash")
    c.delete_messages([1])
    c.uid_expunge([1])
    c.unselect_folder()
    c.select_folder("INBOX", readonly=True)
    c.close_folder()
    c.noop()
    c.logout()


def test_imapclient_idle_and_two_connections(tls_only):
    port = tls_only["ports"]["imaps"]
    watcher = imapclient.IMAPClient("127.0.0.1", port=port, ssl=True, ssl_context=insecure())
    actor = imapclient.IMAPClient("127.0.0.1", port=port, ssl=True, ssl_context=insecure())
    for client in (watcher, actor):
        client.login("alice@example.org", "secret")
        client.select_folder("INBOX")
    watcher.idle()
    started = time.monotonic()
    deliver_in_thread(MESSAGE, "alice@example.org")
    responses = watcher.idle_check(timeout=5)
    assert (1, b"EXISTS") in responses
    assert time.monotonic() - started < 1.0
    actor.noop()
    actor.add_flags([1], [imapclient.imapclient.FLAGGED])
    responses = watcher.idle_check(timeout=5)
    assert any(r[1] == b"FETCH" for r in responses), responses
    watcher.idle_done()
    actor.delete_messages([1])
    actor.expunge()
    time.sleep(0.2)
    _text, responses = watcher.noop()
    assert (1, b"EXPUNGE") in responses
    assert selectors.folder_get(tls_only["mailbox"], "INBOX").message_count == 0
    watcher.logout()
    actor.logout()


def test_imaplib_reads_the_uid_before_the_body_literal(tls_only):
    """Issue 13: a common imaplib idiom takes the UID from the part before the literal, as
    Dovecot puts UID first."""
    deliver_in_thread(MESSAGE, "alice@example.org").join()
    port = tls_only["ports"]["imaps"]
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=insecure())
    m.login("alice@example.org", "secret")
    m.select("INBOX")
    uid = int(m.uid("SEARCH", None, "ALL")[1][0].split()[-1])
    typ, data = m.uid("FETCH", str(uid), "(BODY.PEEK[])")
    assert typ == "OK"
    assert data[0][0].startswith(b"1 (UID %d BODY[] {" % uid), data[0][0]
    assert data[0][1] == MESSAGE
    # Asked for after the literal, UID still comes first; FLAGS keep their place.
    typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] FLAGS UID)")
    assert data[0][0].startswith(b"1 (UID %d BODY[HEADER.FIELDS (SUBJECT)] {" % uid)
    assert data[1] == b" FLAGS (\\Recent))"
    m.logout()


def test_search_charset_aliases_and_other_charsets(tls_only):
    """Issue 13: imap-tools' documented `charset="utf8"` was refused, as was every charset
    but US-ASCII and UTF-8 (RFC 9051 6.4.4 allows others)."""
    subject = "=?utf-8?q?Caf=C3=A9_=D0=BC=D0=B8=D1=80?="  # "Café мир"
    raw = MESSAGE.replace(b"Subject: Quarterly report", b"Subject: " + subject.encode())
    deliver_in_thread(raw, "alice@example.org").join()
    port = tls_only["ports"]["imaps"]
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=insecure())
    m.login("alice@example.org", "secret")
    m.select("INBOX")
    m.literal = "café".encode()
    assert m.search("utf8", "SUBJECT") == ("OK", [b"1"])
    m.literal = "CAFÉ".encode("latin-1")
    assert m.uid("SEARCH", "CHARSET", "latin1", "SUBJECT") == ("OK", [b"1"])
    typ, data = m.search("X-NO-SUCH-CHARSET", "ALL")
    assert typ == "NO" and data == [b"[BADCHARSET (US-ASCII UTF-8)] Unsupported charset"]
    assert m.search("US-ASCII", "SUBJECT", "caf") == ("OK", [b"1"])
    m.logout()
    c = imapclient.IMAPClient("127.0.0.1", port=port, ssl=True, ssl_context=insecure())
    c.login("alice@example.org", "secret")
    c.select_folder("INBOX")
    assert c.search(["SUBJECT", "мир"], charset="koi8-r") == [1]
    assert c.search(["SUBJECT", "мир"], charset="windows-1251") == [1]
    assert c.search(["SUBJECT", "café"], charset="iso-8859-15") == [1]
    assert c.search(["SUBJECT", "mar"], charset="UTF8") == []
    c.logout()
