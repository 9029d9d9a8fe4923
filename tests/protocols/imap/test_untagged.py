"""The untagged responses as values and the one serializer (protocols/imap/untagged.py): each
value's exact bytes, without a socket. The transcript tests check the same bytes through a
session."""

from __future__ import annotations

from django.test import override_settings

from protocols.imap import capability
from protocols.imap import responses as r
from protocols.imap import untagged as u
from protocols.imap.states import State


def one(response) -> bytes:
    return u.wire([response])


def test_counts_and_expunges():
    assert one(u.Exists(20000)) == b"* 20000 EXISTS\r\n"
    assert one(u.Recent(0)) == b"* 0 RECENT\r\n"
    assert one(u.Expunge(7)) == b"* 7 EXPUNGE\r\n"
    assert one(u.Vanished([1, 2, 3, 9])) == b"* VANISHED 1:3,9\r\n"
    assert one(u.Vanished((4,), earlier=True)) == b"* VANISHED (EARLIER) 4\r\n"


def test_flags_and_status_replies():
    assert one(u.Flags(("\\Seen", "$Junk"))) == b"* FLAGS (\\Seen $Junk)\r\n"
    code = r.Reply("OK", "Flags permitted", "PERMANENTFLAGS (\\Seen \\*)")
    assert one(code) == b"* OK [PERMANENTFLAGS (\\Seen \\*)] Flags permitted\r\n"
    assert one(r.BYE_LOGOUT) == b"* BYE Logging out\r\n"


def test_fetch_flags_and_rendered_fetch():
    assert one(u.FetchFlags(3, ["\\Seen"], uid=40, modseq=9)) == (
        b"* 3 FETCH (UID 40 FLAGS (\\Seen) MODSEQ (9))\r\n"
    )
    assert one(u.FetchFlags(3, None, modseq=9)) == b"* 3 FETCH (MODSEQ (9))\r\n"
    assert one(u.FetchFlags(40, [], verb="UIDFETCH")) == b"* 40 UIDFETCH (FLAGS ())\r\n"
    data = b"* 1 FETCH (UID 5)\r\n* 2 FETCH (UID 6)\r\n"
    assert one(u.Fetched(data)) == data


def test_list_and_status_name_mailboxes_by_the_session_encoding():
    item = u.ListItem("LIST", ("\\HasNoChildren",), "/", "Café", utf8=False)
    assert one(item) == b'* LIST (\\HasNoChildren) "/" "Caf&AOk-"\r\n'
    assert one(item._replace(utf8=True)) == b'* LIST (\\HasNoChildren) "/" "Caf\xc3\xa9"\r\n'
    assert one(u.ListItem("LSUB", ("\\Noselect",), "/", "", utf8=False)) == (
        b'* LSUB (\\Noselect) "/" ""\r\n'
    )
    assert one(u.ListItem("LIST", (), "/", "INBOX", False, childinfo_subscribed=True)) == (
        b'* LIST () "/" INBOX ("CHILDINFO" ("SUBSCRIBED"))\r\n'
    )
    assert one(u.ListItem("LIST", (), "/", "New", False, oldname="Old")) == (
        b'* LIST () "/" "New" ("OLDNAME" ("Old"))\r\n'
    )
    status = u.Status("INBOX", (("MESSAGES", 2), ("MAILBOXID", "(F1)")), utf8=False)
    assert one(status) == b"* STATUS INBOX (MESSAGES 2 MAILBOXID (F1))\r\n"


def test_search_sort_thread_esearch():
    assert one(u.Search([2, 3], 77)) == b"* SEARCH 2 3 (MODSEQ 77)\r\n"
    assert one(u.Search([], 77)) == b"* SEARCH\r\n"
    assert one(u.Sort([5, 1])) == b"* SORT 5 1\r\n"
    assert one(u.Thread("(1 2)(3)")) == b"* THREAD (1 2)(3)\r\n"
    assert one(u.Thread("")) == b"* THREAD\r\n"
    esearch = u.ESearch("A1", True, (("MIN", 1), ("ALL", "1:3")))
    assert one(esearch) == b'* ESEARCH (TAG "A1") UID MIN 1 ALL 1:3\r\n'
    # RFC 7377 2.1: MULTISEARCH's correlator names the mailbox and its UIDVALIDITY
    assert one(esearch._replace(mailbox="Sent", uidvalidity=9)) == (
        b'* ESEARCH (TAG "A1" MAILBOX "Sent" UIDVALIDITY 9) UID MIN 1 ALL 1:3\r\n'
    )


def test_connection_and_account_responses():
    assert one(u.Capability(("IMAP4rev1", "IDLE"))) == b"* CAPABILITY IMAP4rev1 IDLE\r\n"
    assert one(u.Enabled(())) == b"* ENABLED\r\n"
    assert one(u.Enabled(("QRESYNC",))) == b"* ENABLED QRESYNC\r\n"
    assert one(u.Id((("name", "Mailhost"),))) == b'* ID ("name" "Mailhost")\r\n'
    assert one(u.Namespace((("", "/"),), (), (("Shared/", "/"),))) == (
        b'* NAMESPACE (("" "/")) NIL (("Shared/" "/"))\r\n'
    )
    assert one(u.Quota("", (("STORAGE", 10, 100),))) == b'* QUOTA "" (STORAGE 10 100)\r\n'
    assert one(u.QuotaRoot("INBOX", ("",), utf8=False)) == b'* QUOTAROOT INBOX ""\r\n'
    assert one(u.QuotaRoot("INBOX", (), utf8=False)) == b"* QUOTAROOT INBOX\r\n"
    assert one(u.Acl("INBOX", (("bob@example.org", "lr"),), utf8=False)) == (
        b'* ACL INBOX "bob@example.org" lr\r\n'
    )
    assert one(u.ListRights("INBOX", "anyone", "", ("l", "r"), utf8=False)) == (
        b'* LISTRIGHTS INBOX "anyone" "" l r\r\n'
    )
    assert one(u.MyRights("INBOX", "", utf8=False)) == b'* MYRIGHTS INBOX ""\r\n'
    assert one(u.Metadata("", (("/private/comment", b"a\0b"),), utf8=False)) == (
        b'* METADATA "" (/private/comment ~{3}\r\na\0b)\r\n'
    )
    assert one(u.MetadataChanged("INBOX", ("/shared/x",), utf8=False)) == (
        b"* METADATA INBOX /shared/x\r\n"
    )


def test_wire_writes_in_order():
    assert u.wire([u.Exists(2), u.Recent(1), r.OK_CLOSED]) == (
        b"* 2 EXISTS\r\n* 1 RECENT\r\n* OK [CLOSED] Previous mailbox closed\r\n"
    )
    assert u.wire([]) == b""


@override_settings(MAILHOST_ALLOW_PLAINTEXT_AUTH=False, MAILHOST_MAX_MESSAGE_SIZE=1000)
def test_capabilities_follow_the_connection_state():
    before = capability.capabilities(
        State.NOT_AUTHENTICATED, tls=False, starttls_allowed=True, compressing=False
    )
    assert before[-2:] == ("STARTTLS", "LOGINDISABLED")
    over_tls = capability.capabilities(
        State.NOT_AUTHENTICATED, tls=True, starttls_allowed=True, compressing=False
    )
    assert "STARTTLS" not in over_tls and over_tls[-1] == "AUTH=PLAIN"
    after = capability.capabilities(
        State.AUTHENTICATED, tls=True, starttls_allowed=False, compressing=False
    )
    assert "COMPRESS=DEFLATE" in after and after[-1] == "APPENDLIMIT=1000"
    assert "AUTH=PLAIN" not in after
    compressing = capability.capabilities(
        State.SELECTED, tls=True, starttls_allowed=False, compressing=True
    )
    assert "COMPRESS=DEFLATE" not in compressing
