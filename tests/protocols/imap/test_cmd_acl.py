"""Transcripts: ACL (RFC 4314) SETACL DELETEACL GETACL LISTRIGHTS MYRIGHTS, shared folders in
the "Other Users" and "Shared" namespaces (RFC 2342), and each right enforced."""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from protocols.imap import responses as r
from protocols.imap.commands.acl import BAD_RIGHTS, NO_NO_SUCH_IDENTIFIER, NO_OWNER_RIGHTS
from tests.protocols.imap.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGE = b"From: dave@example.net\r\nSubject: shared\r\n\r\nHello.\r\n"
SHARED = '"Other Users/alice@example.org/Archive"'


def ok(tag: str, reply: r.Reply = r.OK_COMPLETED) -> bytes:
    return reply.tagged(tag).rstrip(b"\r\n")


@pytest.fixture
def users(imap, make_mailbox, client):
    """alice (owner) with one message in Archive; bob and carol in her domain, dave not."""
    for address in ("bob@example.org", "carol@example.org", "dave@example.net"):
        make_mailbox(address, PASSWORD)
    archive = selectors.folder_get(imap["mailbox"].id, "Archive")
    services.message_append(folder=archive, raw=MESSAGE, flags=[])

    def login(address: str):
        c = client(login=False)
        c.login(address, PASSWORD)
        return c

    return login


def share(rights: str, identifier: str = "bob@example.org", folder: str = "Archive") -> None:
    owner = selectors.mailbox_get("alice@example.org")
    services.folder_acl_set(
        folder=selectors.folder_get(owner.id, folder), identifier=identifier, rights=rights
    )


def test_capability(client):
    caps = client().cmd("c1", "CAPABILITY")[0].split()
    assert b"ACL" in caps and b"RIGHTS=texk" in caps


def test_owner_rights_getacl_listrights(users):
    alice = users("alice@example.org")
    assert alice.cmd("m1", "MYRIGHTS Archive") == [
        b'* MYRIGHTS "Archive" lrswipkxtea',
        ok("m1"),
    ]
    assert alice.cmd("g1", "GETACL Archive") == [
        b'* ACL "Archive" "alice@example.org" lrswipkxtea',
        ok("g1"),
    ]
    assert alice.cmd("l1", "LISTRIGHTS Archive alice@example.org") == [
        b'* LISTRIGHTS "Archive" "alice@example.org" lrswipkxtea',
        ok("l1"),
    ]
    assert alice.cmd("l2", "LISTRIGHTS Archive bob@example.org") == [
        b'* LISTRIGHTS "Archive" "bob@example.org" "" l r s w i p k x t e a',
        ok("l2"),
    ]
    assert alice.cmd("m2", "MYRIGHTS Nope") == [ok("m2", r.NO_NONEXISTENT)]


def test_setacl_modes_and_deleteacl(users):
    alice = users("alice@example.org")
    assert alice.cmd("s1", "SETACL Archive bob@example.org lr") == [ok("s1")]
    assert alice.cmd("s2", "SETACL Archive bob@example.org +ws") == [ok("s2")]
    assert alice.cmd("s3", "SETACL Archive anyone c") == [ok("s3")]  # obsolete "c" is "k"
    assert alice.cmd("g1", "GETACL Archive") == [
        b'* ACL "Archive" "alice@example.org" lrswipkxtea "anyone" k "bob@example.org" lrsw',
        ok("g1"),
    ]
    assert alice.cmd("s4", "SETACL Archive bob@example.org -rd") == [ok("s4")]  # d: x t e
    assert alice.cmd("s5", "SETACL Archive anyone -k") == [ok("s5")]  # nothing left: gone
    assert alice.cmd("g2", "GETACL Archive") == [
        b'* ACL "Archive" "alice@example.org" lrswipkxtea "bob@example.org" lsw',
        ok("g2"),
    ]
    assert alice.cmd("d1", "DELETEACL Archive bob@example.org") == [ok("d1")]
    assert alice.cmd("g3", "GETACL Archive") == [
        b'* ACL "Archive" "alice@example.org" lrswipkxtea',
        ok("g3"),
    ]
    assert alice.cmd("s6", "SETACL Archive bob@example.org lz") == [ok("s6", BAD_RIGHTS)]
    assert alice.cmd("s7", "SETACL Archive nobody@example.org lr") == [
        ok("s7", NO_NO_SUCH_IDENTIFIER)
    ]
    assert alice.cmd("s8", "SETACL Archive alice@example.org lr") == [ok("s8", NO_OWNER_RIGHTS)]
    assert alice.cmd("s9", "SETACL Nope bob@example.org lr") == [ok("s9", r.NO_NONEXISTENT)]


def test_namespace_and_list_of_shared_folders(users):
    share("lr")
    share("lr", identifier="anyone", folder="Sent")
    bob = users("bob@example.org")
    assert bob.cmd("n1", "NAMESPACE") == [
        b'* NAMESPACE (("" "/")) (("Other Users/" "/")) (("Shared/" "/"))',
        ok("n1"),
    ]
    listed = bob.cmd("l1", 'LIST "" "*"')
    assert b'* LIST (\\Noselect \\HasChildren) "/" "Other Users"' in listed
    assert b'* LIST (\\Noselect \\HasChildren) "/" "Other Users/alice@example.org"' in listed
    assert b'* LIST (\\HasNoChildren \\Archive) "/" ' + SHARED.encode() in listed
    assert b'* LIST (\\HasNoChildren \\Sent) "/" "Shared/alice@example.org/Sent"' in listed
    assert not any(b"Drafts" in line and b"alice" in line for line in listed)
    assert bob.cmd("l2", 'LIST "" "Other Users/%"') == [
        b'* LIST (\\Noselect \\HasChildren) "/" "Other Users/alice@example.org"',
        ok("l2"),
    ]
    assert bob.cmd("m1", f"MYRIGHTS {SHARED}") == [
        b"* MYRIGHTS " + SHARED.encode() + b" lr",
        ok("m1"),
    ]
    # the domain-wide share reaches carol too, not dave of another domain
    carol = users("carol@example.org")
    assert b'* LIST (\\HasNoChildren \\Sent) "/" "Shared/alice@example.org/Sent"' in carol.cmd(
        "l3", 'LIST "" "*"'
    )
    assert carol.cmd("x1", f"SELECT {SHARED}") == [ok("x1", r.NO_NONEXISTENT)]
    dave = users("dave@example.net")
    assert not any(b"alice" in line for line in dave.cmd("l4", 'LIST "" "*"'))
    assert dave.cmd("x2", 'SELECT "Shared/alice@example.org/Sent"') == [ok("x2", r.NO_NONEXISTENT)]


def test_read_only_share(users):
    share("lr")
    bob = users("bob@example.org")
    lines = bob.cmd("s1", f"SELECT {SHARED}")
    assert lines[-1] == ok("s1", r.OK_SELECT_RO)
    assert b"* 1 EXISTS" in lines
    # reading sets no \Seen without "s"
    fetched = bob.cmd("f1", "FETCH 1 (BODY[] FLAGS)")
    assert fetched[-1] == ok("f1") and b"\\Seen" not in b"".join(fetched)
    assert bob.cmd("t1", "STORE 1 +FLAGS (\\Seen)") == [ok("t1", r.NO_READ_ONLY)]
    assert bob.cmd("e1", "EXPUNGE") == [ok("e1", r.NO_READ_ONLY)]
    assert bob.cmd("a1", b"APPEND %s {%d+}\r\n%s" % (SHARED.encode(), len(MESSAGE), MESSAGE)) == [
        ok("a1", r.NO_PERMISSION)
    ]
    assert bob.cmd("c1", f"COPY 1 {SHARED}") == [ok("c1", r.NO_PERMISSION)]
    assert bob.cmd("c2", "COPY 1 INBOX")[-1].startswith(b"c2 OK")  # reading out is fine
    status = bob.cmd("st", f"STATUS {SHARED} (MESSAGES UNSEEN)")
    assert status == [b"* STATUS " + SHARED.encode() + b" (MESSAGES 1 UNSEEN 1)", ok("st")]
    assert bob.cmd("g1", f"GETACL {SHARED}") == [ok("g1", r.NO_PERMISSION)]
    assert bob.cmd("s2", f"SETACL {SHARED} carol@example.org lr") == [ok("s2", r.NO_PERMISSION)]
    assert bob.cmd("d1", f"DELETE {SHARED}") == [ok("d1", r.NO_PERMISSION)]
    assert bob.cmd("r1", f'RENAME {SHARED} "Mine"') == [ok("r1", r.NO_PERMISSION)]


def test_lookup_without_read(users):
    share("l")
    bob = users("bob@example.org")
    assert bob.cmd("s1", f"SELECT {SHARED}") == [ok("s1", r.NO_PERMISSION)]
    assert bob.cmd("s2", f"STATUS {SHARED} (MESSAGES)") == [ok("s2", r.NO_PERMISSION)]
    # a folder never shared is not there at all (RFC 4314 6)
    assert bob.cmd("s3", 'SELECT "Other Users/alice@example.org/Drafts"') == [
        ok("s3", r.NO_NONEXISTENT)
    ]


def test_seen_write_delete_expunge_rights(users):
    share("lrs")
    bob = users("bob@example.org")
    assert bob.cmd("s1", f"SELECT {SHARED}")[-1] == ok("s1", r.OK_SELECT_RW)
    assert bob.cmd("t1", "STORE 1 +FLAGS (\\Seen)") == [
        b"* 1 FETCH (FLAGS (\\Seen \\Recent))",
        ok("t1"),
    ]
    assert bob.cmd("t2", "STORE 1 +FLAGS (\\Flagged)") == [ok("t2", r.NO_PERMISSION)]
    assert bob.cmd("t3", "STORE 1 +FLAGS ($Label1)") == [ok("t3", r.NO_PERMISSION)]
    assert bob.cmd("t4", "STORE 1 +FLAGS (\\Deleted)") == [ok("t4", r.NO_PERMISSION)]
    assert bob.cmd("t5", "STORE 1 FLAGS (\\Seen)") == [ok("t5", r.NO_PERMISSION)]
    assert bob.cmd("e1", "EXPUNGE") == [ok("e1", r.NO_PERMISSION)]
    assert bob.cmd("m1", "MOVE 1 INBOX") == [ok("m1", r.NO_PERMISSION)]
    share("lrswte")
    bob.cmd("s2", f"SELECT {SHARED}")
    assert bob.cmd("t6", "STORE 1 +FLAGS (\\Flagged \\Deleted)")[-1] == ok("t6")
    assert bob.cmd("e2", "EXPUNGE") == [b"* 1 EXPUNGE", ok("e2")]
    archive = selectors.folder_get(selectors.mailbox_get("alice@example.org").id, "Archive")
    assert archive.message_count == 0


def test_insert_right(users):
    share("lri")
    bob = users("bob@example.org")
    appended = bob.cmd(
        "a1", b"APPEND %s (\\Seen \\Flagged) {%d+}\r\n%s" % (SHARED.encode(), len(MESSAGE), MESSAGE)
    )
    assert appended[-1].startswith(b"a1 OK [APPENDUID ")
    bob.cmd("s1", "SELECT INBOX")
    bob.cmd("a2", b"APPEND INBOX {%d+}\r\n%s" % (len(MESSAGE), MESSAGE))
    assert bob.cmd("c1", f"COPY 1 {SHARED}")[-1].startswith(b"c1 OK [COPYUID ")
    alice = users("alice@example.org")
    alice.cmd("s2", "SELECT Archive")
    # the flags bob had no right to set were dropped (RFC 4314 4)
    assert alice.cmd("f1", "FETCH 2 FLAGS") == [b"* 2 FETCH (FLAGS (\\Recent))", ok("f1")]


def test_create_and_delete_rights(users):
    share("lr")
    bob = users("bob@example.org")
    sub = '"Other Users/alice@example.org/Archive/2026"'
    assert bob.cmd("c1", f"CREATE {sub}") == [ok("c1", r.NO_PERMISSION)]
    assert bob.cmd("c2", 'CREATE "Other Users/alice@example.org/Top"') == [
        ok("c2", r.NO_PERMISSION)
    ]
    share("lrk")
    assert bob.cmd("c3", f"CREATE {sub}")[-1].startswith(b"c3 OK [MAILBOXID (")
    alice_id = selectors.mailbox_get("alice@example.org").id
    created = selectors.folder_get(alice_id, "Archive/2026")
    assert created is not None
    assert selectors.folder_acl(created)[1:] == [("bob@example.org", "lrk")]  # inherited
    assert bob.cmd("d1", f"DELETE {sub}") == [ok("d1", r.NO_PERMISSION)]
    share("lrx", folder="Archive/2026")
    assert bob.cmd("d2", f"DELETE {sub}") == [ok("d2")]
    assert selectors.folder_get(alice_id, "Archive/2026") is None


def test_admin_right_lets_a_grantee_share_on(users):
    share("lra")
    bob = users("bob@example.org")
    assert bob.cmd("s1", f"SETACL {SHARED} carol@example.org lr") == [ok("s1")]
    assert bob.cmd("g1", f"GETACL {SHARED}") == [
        b"* ACL "
        + SHARED.encode()
        + b' "alice@example.org" lrswipkxtea "bob@example.org" lra "carol@example.org" lr',
        ok("g1"),
    ]
    carol = users("carol@example.org")
    assert carol.cmd("e1", f"EXAMINE {SHARED}")[-1] == ok("e1", r.OK_EXAMINE_RO)


def test_two_users_idle_on_a_shared_folder(users):
    """Over real sessions: bob IDLEs in alice's shared folder; alice's APPEND and her \\Seen
    reach him at once."""
    share("lrs")
    bob = users("bob@example.org")
    alice = users("alice@example.org")
    bob.cmd("s1", f"SELECT {SHARED}")
    bob.send("i1 IDLE\r\n")
    assert bob.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
    assert alice.cmd("a1", b"APPEND Archive {%d+}\r\n%s" % (len(MESSAGE), MESSAGE))[-1].startswith(
        b"a1 OK"
    )
    assert bob.line() == b"* 2 EXISTS"
    assert bob.line() == b"* 2 RECENT"  # bob's read-write SELECT took \\Recent of both
    alice.cmd("s2", "SELECT Archive")
    alice.cmd("t1", "STORE 2 +FLAGS.SILENT (\\Flagged)")
    assert bob.line() == b"* 2 FETCH (FLAGS (\\Flagged \\Recent))"
    bob.send("DONE\r\n")
    assert bob.until("i1") == [ok("i1", r.OK_IDLE_DONE)]
    # bob's \Seen (he holds "s") is his own (per-reader \Seen): alice hears nothing of it
    bob.cmd("t2", "STORE 1 +FLAGS.SILENT (\\Seen)")
    assert alice.cmd("n1", "NOOP") == [ok("n1", r.OK_NOOP)]
    assert alice.cmd("f1", "FETCH 1 FLAGS") == [b"* 1 FETCH (FLAGS ())", ok("f1")]
