"""Transcripts: METADATA and METADATA-SERVER (RFC 5464) GETMETADATA / SETMETADATA, and
LIST-METADATA (RFC 9590)."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from protocols.imap import responses as r
from protocols.imap.commands.metadata import NO_TOO_MANY
from tests.protocols.imap.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


def test_capabilities(client):
    caps = client().cmd("c1", "CAPABILITY")[0].split()
    assert {b"METADATA", b"METADATA-SERVER", b"LIST-METADATA"} <= set(caps)


def test_set_get_remove_folder_entries(client):
    c = client()
    assert c.cmd("s1", 'SETMETADATA INBOX (/private/comment "My mail" /shared/Comment "ours")') == [
        ok("s1")
    ]
    # names are case-insensitive and shown in lower case (RFC 5464 3.2)
    assert c.cmd("g1", "GETMETADATA INBOX (/private/comment /shared/comment /shared/none)") == [
        b'* METADATA INBOX (/private/comment "My mail" /shared/comment "ours")',
        ok("g1"),
    ]
    assert c.cmd("s2", "SETMETADATA INBOX (/private/comment NIL)") == [ok("s2")]
    assert c.cmd("g2", "GETMETADATA INBOX /private/comment") == [ok("g2")]
    # a value with NUL octets comes back as a literal8
    assert c.cmd("s3", b"SETMETADATA INBOX (/private/bin ~{3+}\r\na\x00b)") == [ok("s3")]
    c.send(b"g3 GETMETADATA INBOX /private/bin\r\n")
    assert c.line() == b"* METADATA INBOX (/private/bin ~{3}"
    assert c.read_exact(3) == b"a\x00b"
    assert c.until("g3") == [b")", ok("g3")]
    assert c.cmd("g4", "GETMETADATA Nope /private/comment") == [ok("g4", r.NO_NONEXISTENT)]
    assert c.cmd("b1", "GETMETADATA INBOX /other/comment")[0].startswith(b"b1 BAD")
    assert c.cmd("b2", 'SETMETADATA INBOX (/private/a* "x")')[0].startswith(b"b2 BAD")


def test_depth_and_maxsize(client):
    c = client()
    c.cmd(
        "s1",
        'SETMETADATA INBOX (/private/vendor/a "1" /private/vendor/a/b "22" '
        '/private/vendor/c "' + "x" * 50 + '")',
    )
    assert c.cmd("g1", "GETMETADATA (DEPTH 1) INBOX /private/vendor") == [
        b'* METADATA INBOX (/private/vendor/a "1" /private/vendor/c "' + b"x" * 50 + b'")',
        ok("g1"),
    ]
    assert c.cmd("g2", "GETMETADATA (DEPTH infinity MAXSIZE 10) INBOX /private/vendor") == [
        b'* METADATA INBOX (/private/vendor/a "1" /private/vendor/a/b "22")',
        ok("g2", r.Reply("OK", "Completed", "METADATA LONGENTRIES 50")),
    ]
    # the options after the mailbox too, as clients send them
    assert c.cmd("g3", "GETMETADATA INBOX (DEPTH 0) /private/vendor/a") == [
        b'* METADATA INBOX (/private/vendor/a "1")',
        ok("g3"),
    ]


def test_server_entries(client, live_settings):
    c = client()
    admin = f"mailto:postmaster@{live_settings.MAILHOST_HOSTNAME}".encode()
    assert c.cmd("g1", 'GETMETADATA "" (/shared/admin /shared/comment)') == [
        b'* METADATA "" (/shared/admin "' + admin + b'")',
        ok("g1"),
    ]
    assert c.cmd("s1", 'SETMETADATA "" (/private/comment "note to self")') == [ok("s1")]
    assert c.cmd("g2", 'GETMETADATA "" /private/comment') == [
        b'* METADATA "" (/private/comment "note to self")',
        ok("g2"),
    ]
    # the server's shared entries are the administrator's
    assert c.cmd("s2", 'SETMETADATA "" (/shared/comment "mine")') == [ok("s2", r.NO_PERMISSION)]
    assert c.cmd("s3", 'SETMETADATA "" (/shared/admin "x")') == [ok("s3", r.NO_PERMISSION)]


def test_special_use_entry_and_limits(client, monkeypatch):
    c = client()
    assert c.cmd("g1", "GETMETADATA Sent /private/specialuse") == [
        b'* METADATA "Sent" (/private/specialuse "\\\\Sent")',
        ok("g1"),
    ]
    big = "y" * (services.METADATA_MAX_VALUE_SIZE + 1)
    lines = c.cmd("s1", b"SETMETADATA INBOX (/private/big {%d+}\r\n%s)" % (len(big), big.encode()))
    assert lines == [
        ok(
            "s1",
            r.Reply(
                "NO",
                "Metadata value too large",
                f"METADATA MAXSIZE {services.METADATA_MAX_VALUE_SIZE}",
            ),
        )
    ]
    monkeypatch.setattr(services, "METADATA_MAX_ENTRIES", 1)
    assert c.cmd("s2", 'SETMETADATA INBOX (/private/one "1")') == [ok("s2")]
    assert c.cmd("s3", 'SETMETADATA INBOX (/private/one "2")') == [ok("s3")]  # a change
    assert c.cmd("s4", 'SETMETADATA INBOX (/private/two "2")') == [ok("s4", NO_TOO_MANY)]


def test_list_metadata(client):
    c = client()
    c.cmd("s1", 'SETMETADATA Archive (/shared/comment "old mail" /private/color "blue")')
    assert c.cmd(
        "l1", 'LIST "" "A*" RETURN (STATUS (MESSAGES) METADATA (/shared/comment /private/color))'
    ) == [
        b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"',
        b'* STATUS "Archive" (MESSAGES 0)',
        b'* METADATA "Archive" (/private/color "blue" /shared/comment "old mail")',
        ok("l1"),
    ]
    listed = c.cmd("l2", 'LIST "" "*" RETURN (METADATA (/shared/comment))')
    assert listed[-1] == ok("l2")
    assert sum(line.startswith(b"* METADATA") for line in listed) == 1


def test_private_entries_are_each_readers_own_on_a_shared_folder(client, make_mailbox):
    make_mailbox("bob@example.org", PASSWORD)
    alice = client()
    alice_id = selectors.mailbox_get("alice@example.org").id
    archive = selectors.folder_get(alice_id, "Archive")
    services.folder_acl_set(folder=archive, identifier="bob@example.org", rights="lr")
    alice.cmd("s1", 'SETMETADATA Archive (/private/comment "alice\'s" /shared/comment "both")')
    bob = client(login=False)
    bob.login("bob@example.org", PASSWORD)
    shared = '"Other Users/alice@example.org/Archive"'
    assert bob.cmd("g1", f"GETMETADATA {shared} (/private/comment /shared/comment)") == [
        b"* METADATA " + shared.encode() + b' (/shared/comment "both")',
        ok("g1"),
    ]
    assert bob.cmd("s1", f'SETMETADATA {shared} (/private/comment "bob\'s")') == [ok("s1")]
    assert bob.cmd("s2", f'SETMETADATA {shared} (/shared/comment "x")') == [
        ok("s2", r.NO_PERMISSION)  # "w" needed for shared entries
    ]
    assert alice.cmd("g2", "GETMETADATA Archive /private/comment") == [
        b'* METADATA "Archive" (/private/comment "alice\'s")',
        ok("g2"),
    ]
