"""Per-reader \\Seen on shared folders (issue 19; RFC 4314's "s" right, as Dovecot's INDEXPVT):
over real sockets with imaplib, the owner alice and two readers, bob and carol, of her
Archive. Each reader's \\Seen is its own; the owner's view is unchanged; FETCH, STORE, the
implicit \\Seen of BODY[], SEARCH, STATUS, SELECT's [UNSEEN n], CONDSTORE, IDLE, COPY and
expunges all follow it; a new connection finds it kept."""

from __future__ import annotations

import imaplib
import re

import pytest

from mailboxes import selectors, services
from mailboxes.models import PrivateSeen
from protocols.imap import responses as r
from tests.protocols.imap.conftest import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

SHARED = '"Other Users/alice@example.org/Archive"'


def message(n: int) -> bytes:
    return b"From: dave@example.net\r\nSubject: note %d\r\n\r\nBody %d.\r\n" % (n, n)


@pytest.fixture
def readers(imap, make_mailbox):
    """alice's Archive holds three messages, the first \\Seen by alice; bob holds
    "lrswite" on it, carol "lrs". Returns a function that logs an imaplib client in."""
    owner = imap["mailbox"]
    for address in ("bob@example.org", "carol@example.org"):
        make_mailbox(address, PASSWORD)
    archive = selectors.folder_get(owner.id, "Archive")
    for n in (1, 2, 3):
        services.message_append(folder=archive, raw=message(n), flags=["\\Seen"] if n == 1 else [])
    services.folder_acl_set(folder=archive, identifier="bob@example.org", rights="lrswite")
    services.folder_acl_set(folder=archive, identifier="carol@example.org", rights="lrs")
    clients: list[imaplib.IMAP4] = []

    def login(address: str) -> imaplib.IMAP4:
        c = imaplib.IMAP4("127.0.0.1", imap["ports"]["imap"], timeout=10)
        c.login(address, PASSWORD)
        clients.append(c)
        return c

    yield login
    for c in clients:
        try:
            c.logout()
        except (imaplib.IMAP4.abort, OSError):
            pass


def flags(c: imaplib.IMAP4, sequence: str = "1:*") -> dict[int, set[str]]:
    typ, data = c.fetch(sequence, "(FLAGS)")
    assert typ == "OK", data
    out = {}
    for line in data:
        number = int(line.split()[0])
        names = re.search(rb"FLAGS \(([^)]*)\)", line).group(1).decode().split()
        out[number] = set(names) - {"\\Recent"}
    return out


def search(c: imaplib.IMAP4, key: str) -> list[int]:
    typ, data = c.search(None, key)
    assert typ == "OK", data
    return [int(n) for n in data[0].split()]


def status_unseen(c: imaplib.IMAP4, name: str) -> int:
    typ, data = c.status(name, "(UNSEEN MESSAGES)")
    assert typ == "OK", data
    return int(re.search(rb"UNSEEN (\d+)", data[0]).group(1))


def test_each_reader_has_its_own_seen(readers):
    alice, bob, carol = (readers(f"{n}@example.org") for n in ("alice", "bob", "carol"))
    typ, _ = bob.select(SHARED)
    assert typ == "OK"
    # alice's \Seen is hers: bob starts with all three unseen, first unseen 1
    assert bob.response("UNSEEN") == ("UNSEEN", [b"1"])
    assert flags(bob) == {1: set(), 2: set(), 3: set()}
    bob.store("2", "+FLAGS", "(\\Seen)")
    typ, _ = bob.fetch("3", "(BODY[])")  # not PEEK: sets bob's \Seen
    assert typ == "OK"
    assert flags(bob) == {1: set(), 2: {"\\Seen"}, 3: {"\\Seen"}}
    assert search(bob, "SEEN") == [2, 3]
    assert search(bob, "UNSEEN") == [1]
    assert search(bob, 'OR SEEN SUBJECT "note 1"') == [1, 2, 3]
    assert status_unseen(bob, SHARED) == 1

    # carol sees none of bob's, and alice's own view is as before
    carol.select(SHARED)
    assert flags(carol) == {1: set(), 2: set(), 3: set()}
    assert search(carol, "SEEN") == []
    assert status_unseen(carol, SHARED) == 3
    carol.store("1", "+FLAGS", "(\\Seen)")
    assert search(carol, "SEEN") == [1]
    assert status_unseen(carol, SHARED) == 2
    alice.select("Archive")
    assert flags(alice) == {1: {"\\Seen"}, 2: set(), 3: set()}
    assert search(alice, "UNSEEN") == [2, 3]
    assert status_unseen(alice, "Archive") == 2
    assert status_unseen(bob, SHARED) == 1

    # a new connection finds bob's \Seen kept; -FLAGS takes it away for him alone
    bob.logout()
    bob = readers("bob@example.org")
    bob.select(SHARED)
    assert bob.response("UNSEEN") == ("UNSEEN", [b"1"])
    assert flags(bob) == {1: set(), 2: {"\\Seen"}, 3: {"\\Seen"}}
    bob.store("3", "-FLAGS", "(\\Seen)")
    assert search(bob, "UNSEEN") == [1, 3]
    assert flags(carol) == {1: {"\\Seen"}, 2: set(), 3: set()}
    assert flags(alice) == {1: {"\\Seen"}, 2: set(), 3: set()}


def test_other_flags_stay_shared_and_replace_keeps_the_owners_seen(readers):
    alice, bob = readers("alice@example.org"), readers("bob@example.org")
    bob.select(SHARED)
    typ, data = bob.store("1", "+FLAGS", "(\\Seen \\Flagged)")
    assert typ == "OK" and b"\\Seen" in data[0] and b"\\Flagged" in data[0]
    alice.select("Archive")
    assert flags(alice, "1") == {1: {"\\Seen", "\\Flagged"}}  # her own \Seen, his \Flagged
    bob.store("1", "FLAGS", "(\\Answered)")  # replaces bob's flags: his \Seen goes
    assert flags(bob, "1") == {1: {"\\Answered"}}
    assert flags(alice, "1") == {1: {"\\Seen", "\\Answered"}}  # hers stays
    bob.store("2", "FLAGS", "(\\Seen)")
    assert flags(bob, "2") == {2: {"\\Seen"}}
    assert flags(alice, "2") == {2: set()}


def test_condstore_modseq_only_for_the_readers_sessions(readers):
    alice, bob, carol = (readers(f"{n}@example.org") for n in ("alice", "bob", "carol"))
    bob2 = readers("bob@example.org")
    for c, name in ((alice, "Archive"), (bob, SHARED), (bob2, SHARED), (carol, SHARED)):
        assert c.enable("CONDSTORE")[0] == "OK"
        assert c.select(name)[0] == "OK"
    before = int(bob.response("HIGHESTMODSEQ")[1][0])
    typ, data = bob.store("2", "+FLAGS", "(\\Seen)")
    modseq = int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1))
    assert modseq > before
    # bob's other session hears of it with its MODSEQ; alice and carol hear nothing
    bob2.noop()
    assert bob2.response("FETCH")[1] == [b"2 (FLAGS (\\Seen) MODSEQ (%d))" % modseq]
    for c in (alice, carol):
        c.noop()
        assert c.response("FETCH") == ("FETCH", [None])
    typ, data = bob2.fetch("1:*", f"(FLAGS) (CHANGEDSINCE {before})")
    assert data == [b"2 (FLAGS (\\Seen) MODSEQ (%d))" % modseq]
    typ, data = carol.fetch("1:*", f"(FLAGS) (CHANGEDSINCE {before})")
    assert data == [None]
    assert bob2.search(None, f"MODSEQ {modseq}")[1] == [b"2 (MODSEQ %d)" % modseq]
    assert bob2.search(None, "SEEN MODSEQ 1")[1] == [b"2 (MODSEQ %d)" % modseq]
    assert carol.search(None, f"MODSEQ {modseq}")[1] == [b""]
    # UNCHANGEDSINCE (RFC 7162 3.1.3): bob's own change refuses his conditional STORE,
    # carol's goes through
    assert bob2.store("2", f"(UNCHANGEDSINCE {before}) -FLAGS", "(\\Seen)")[0] == "OK"
    assert bob2.response("MODIFIED") == ("MODIFIED", [b"2"])
    assert flags(bob2, "2") == {2: {"\\Seen"}}
    typ, data = carol.store("2", f"(UNCHANGEDSINCE {before}) +FLAGS", "(\\Seen)")
    assert carol.response("MODIFIED") == ("MODIFIED", [None])
    assert b"\\Seen" in data[0]
    typ, data = alice.fetch("2", "(MODSEQ)")
    assert int(re.search(rb"MODSEQ \((\d+)\)", data[0]).group(1)) < modseq


def test_idle_tells_the_readers_other_session(readers, client):
    bob = readers("bob@example.org")
    bob.select(SHARED)
    idler = client(login=False)
    idler.login("bob@example.org", PASSWORD)
    assert idler.cmd("s1", f"SELECT {SHARED}")[-1] == r.OK_SELECT_RW.tagged("s1").rstrip(b"\r\n")
    carol = client(login=False)
    carol.login("carol@example.org", PASSWORD)
    carol.cmd("s2", f"SELECT {SHARED}")
    idler.send("i1 IDLE\r\n")
    assert idler.line() == r.CONTINUE_IDLE.rstrip(b"\r\n")
    bob.store("3", "+FLAGS", "(\\Seen)")
    assert idler.line() == b"* 3 FETCH (FLAGS (\\Seen))"  # bob's first session took \\Recent
    idler.send("DONE\r\n")
    assert idler.until("i1")[-1] == r.OK_IDLE_DONE.tagged("i1").rstrip(b"\r\n")
    assert carol.cmd("n1", "NOOP") == [r.OK_NOOP.tagged("n1").rstrip(b"\r\n")]


def test_copy_and_move_take_the_readers_seen_and_expunge_removes_it(readers):
    alice, bob = readers("alice@example.org"), readers("bob@example.org")
    bob.select(SHARED)
    bob.store("2", "+FLAGS", "(\\Seen)")
    typ, _ = bob.copy("1:2", "INBOX")  # alice has seen 1, bob has seen 2
    assert typ == "OK"
    typ, _ = bob._simple_command("MOVE", "2", "INBOX")
    assert typ == "OK"
    bob.select("INBOX")
    assert flags(bob) == {1: set(), 2: {"\\Seen"}, 3: {"\\Seen"}}
    assert status_unseen(bob, "INBOX") == 1
    archive = selectors.folder_get(selectors.mailbox_get("alice@example.org").id, "Archive")
    assert archive.message_count == 2 and archive.unseen_count == 1  # alice's count
    # the moved message's row went with it; alice's expunge takes bob's rows of hers
    bob.select(SHARED)
    bob.store("2", "+FLAGS", "(\\Seen)")
    assert PrivateSeen.objects.filter(folder=archive).count() == 1
    alice.select("Archive")
    alice.store("2", "+FLAGS", "(\\Deleted)")
    alice.expunge()
    assert PrivateSeen.objects.filter(folder=archive).count() == 0
