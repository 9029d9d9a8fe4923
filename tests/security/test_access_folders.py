"""IMAP: one mailbox cannot reach another mailbox's folders by any name trick.

Alice, logged in over IMAP, throws every command that takes a mailbox name at names that
point (or could be read as pointing) into Bob's mailbox: path traversal, Bob's address as a
prefix, "INBOX" of another user, shared/other-users namespace prefixes, wildcards, NUL,
modified UTF-7 tricks and very long names. Whatever the server answers, nothing of Bob's
ever shows up in Alice's session, and Bob's folders and messages are exactly as before.
"""

from __future__ import annotations

import pytest

from mailboxes import selectors, services
from mailhost import runner
from tests.protocols.imap.conftest import Transcript
from tests.support.servers import running

SECRET = b"bob-secret-7f3a9c"
BOB_FOLDERS = ("INBOX", "Private", "Private/Deep")

NAME_TRICKS = [
    "../bob@example.org/INBOX",
    "../bob@example.org",
    "..",
    "../..",
    "/INBOX",
    "//bob@example.org/INBOX",
    "INBOX/../../bob@example.org/INBOX",
    "INBOX/../Private",
    "./Private",
    "bob@example.org/INBOX",
    "bob@example.org",
    "bob@example.org/Private",
    "bob/INBOX",
    "bob",
    "~bob/INBOX",
    "~bob@example.org/INBOX",
    "#shared/bob@example.org/INBOX",
    "#user/bob/INBOX",
    "Other Users/bob@example.org/INBOX",
    "Shared Folders/bob/Private",
    "user.bob.INBOX",
    "Private",
    "Private/Deep",
    "*",
    "%",
    "*/INBOX",
    "%/Private",
    "INBOX\x00bob@example.org",
    "&AAA-bob",
    "&AC4ALg-/bob@example.org/INBOX",  # "../" in modified UTF-7
    "&AC8-INBOX",  # "/" in modified UTF-7
    "&-bob@example.org/INBOX",
    "INBOX&",
    "\\INBOX",
    "P" * 5000,
    "a/" * 2000,
]


def _quote(name: str) -> bytes:
    raw = name.encode("utf-8")
    if b"\x00" in raw or len(raw) > 200 or any(c > 127 for c in raw):
        return b"{%d+}\r\n" % len(raw) + raw  # a literal carries any byte (LITERAL+)
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _bob_state(bob) -> list:
    state = []
    for folder in selectors.folders_of(bob):
        messages = [
            (m.uid, m.size, bytes(selectors.blob_read(m.blob)), m.seen, m.deleted)
            for m in selectors.messages_in(folder)
        ]
        subscribed = selectors.is_subscribed(bob, folder.name)
        state.append((folder.name, folder.uidvalidity, folder.uidnext, subscribed, messages))
    return state


@pytest.fixture
def two_mailboxes(live_settings, make_mailbox, transactional_db):
    live_settings.MAILHOST_ALLOW_PLAINTEXT_AUTH = True
    alice = make_mailbox("alice@example.org", "secret")
    bob = make_mailbox("bob@example.org", "hunter2")
    services.folder_create(mailbox=bob, name="Private")
    services.folder_create(mailbox=bob, name="Private/Deep")
    for name in BOB_FOLDERS:
        services.message_append(
            folder=selectors.folder_get(bob, name),
            raw=b"From: bob@example.org\r\nSubject: " + SECRET + b"\r\n\r\n" + SECRET + b"\r\n",
        )
    services.message_append(
        folder=selectors.folder_get(alice, "INBOX"),
        raw=b"From: alice@example.org\r\nSubject: mine\r\n\r\nalice's own\r\n",
    )
    with running(runner.IMAP) as ports:
        yield ports, alice, bob


def test_no_name_trick_reaches_another_mailbox(two_mailboxes):
    ports, alice, bob = two_mailboxes
    before = _bob_state(bob)
    client = Transcript(ports["imap"])
    client.login()
    seen: list[bytes] = []

    def cmd(tag: str, text: bytes) -> list[bytes]:
        lines = client.cmd(tag, text)
        seen.extend(lines)
        return lines

    reads = [b"SELECT %s", b"EXAMINE %s", b"STATUS %s (MESSAGES UIDNEXT UNSEEN)"]
    reads += [b'LIST "" %s', b'LIST %s "*"', b'LSUB "" %s', b"SUBSCRIBE %s"]
    reads += [b"UNSUBSCRIBE %s", b"GETQUOTAROOT %s", b"GETACL %s", b"MYRIGHTS %s"]
    for number, name in enumerate(NAME_TRICKS):
        quoted = _quote(name)
        for index, template in enumerate(reads):
            lines = cmd(f"r{number}x{index}", template.replace(b"%s", quoted))
            assert lines[-1].split(b" ")[1] in (b"OK", b"NO", b"BAD"), lines
            if lines[-1].split(b" ")[1] == b"OK" and template.startswith((b"SELECT", b"EXAMINE")):
                # Only a folder of Alice's own may open: it has none of Bob's messages.
                fetched = cmd(f"f{number}x{index}", b"FETCH 1:* (BODY.PEEK[] ENVELOPE)")
                assert not any(SECRET in line for line in fetched)
        # Writes from Alice's INBOX into the trick name, then at the name itself.
        cmd(f"s{number}", b"SELECT INBOX")
        for index, template in enumerate(
            [
                b"COPY 1 %s",
                b"UID COPY 1 %s",
                b"APPEND %s {5+}\r\nhello",
                b'RENAME %s "Stolen"',
                b"DELETE %s",
            ]
        ):
            lines = cmd(f"w{number}x{index}", template.replace(b"%s", quoted))
            assert lines[-1].split(b" ")[1] in (b"OK", b"NO", b"BAD"), lines
        cmd(f"c{number}", b'CREATE "Mine"')
        cmd(f"m{number}", b'RENAME "Mine" ' + quoted)
        cmd(f"d{number}", b'DELETE "Mine"')
        cmd(f"e{number}", b"DELETE " + quoted)
    lines = cmd("all", b'LIST "" "*"')
    assert lines[-1].startswith(b"all OK")
    client.close()

    assert not any(SECRET in line for line in seen), [line for line in seen if SECRET in line]
    # LIST shows exactly Alice's own folders (names she made up included), nothing more.
    assert len(lines) - 1 == selectors.folders_of(alice).count()
    # Bob's mailbox is untouched: same folders, same messages, same bytes, same flags.
    assert _bob_state(bob) == before
    # Whatever Alice created stayed in her own mailbox.
    for folder in selectors.folders_of(alice):
        for message in selectors.messages_in(folder):
            assert SECRET not in bytes(selectors.blob_read(message.blob))


def test_bobs_inbox_by_his_address_is_not_bobs(two_mailboxes):
    """The plainest attempt, as a transcript: Bob's INBOX named through his address."""
    ports, _alice, bob = two_mailboxes
    client = Transcript(ports["imap"])
    client.login()
    for name in (b'"bob@example.org/INBOX"', b'"../bob@example.org/INBOX"', b"Private"):
        reply = client.cmd("a1", b"SELECT " + name)[-1]
        assert reply.startswith(b"a1 NO"), reply
        reply = client.cmd("a2", b"STATUS " + name + b" (MESSAGES)")[-1]
        assert reply.startswith(b"a2 NO"), reply
    client.close()
    assert selectors.messages_in(selectors.folder_get(bob, "INBOX")).count() == 1
