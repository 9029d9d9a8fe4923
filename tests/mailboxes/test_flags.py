"""mailboxes/flags.py: the one table of system flags, and the Flags value."""

from __future__ import annotations

import pytest

from mailboxes import flags
from mailboxes.flags import Flags, SystemFlag
from mailboxes.models import Message


def test_one_order_for_bits_columns_and_names():
    assert flags.NAMES == ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
    assert flags.COLUMNS == ("seen", "answered", "flagged", "deleted", "draft")
    for k, flag in enumerate(flags.SYSTEM):
        assert int(flag) == 1 << k
        assert (flag.imap, flag.column) == (flags.NAMES[k], flags.COLUMNS[k])
    # The FLAGS/PERMANENTFLAGS order is the same five, only permuted.
    assert flags.ANNOUNCED == ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def test_columns_are_message_fields():
    fields = {f.name for f in Message._meta.get_fields()}
    assert set(flags.COLUMNS) <= fields


def test_parse_keeps_what_a_message_can_store():
    parsed = Flags.parse(
        ["\\draft", "$Label1", "\\Recent", "\\Unknown", "$label1", "a(b", "\\SEEN"]
    )
    assert parsed == Flags(SystemFlag.SEEN | SystemFlag.DRAFT, ("$Label1",))
    assert parsed.names() == ["\\Seen", "\\Draft", "$Label1"]
    assert SystemFlag.DRAFT in parsed and SystemFlag.DELETED not in parsed
    assert parsed.columns() == {
        "seen": True,
        "answered": False,
        "flagged": False,
        "deleted": False,
        "draft": True,
    }


def test_of_system_flags():
    assert Flags.of(SystemFlag.DRAFT, SystemFlag.SEEN).names() == ["\\Seen", "\\Draft"]
    assert Flags.of().names() == []


@pytest.mark.parametrize("bits", range(32))
def test_bits_columns_and_names_agree(bits):
    values = flags.column_values(bits)
    assert flags.bits_of(values) == bits
    assert flags.bits_of(int(v) for v in values) == bits  # 0/1 as SQLite returns them
    names = flags.names_of_bits(bits, "Work $X")
    assert names == flags.names_of_columns("Work $X", values)
    assert names == Flags.parse(names).names()
    assert list(flags.system_names(bits)) == names[:-2]


def test_lookups_ignore_case():
    assert flags.system_flag("\\fLaGgEd") is SystemFlag.FLAGGED
    assert flags.column("\\DELETED") == "deleted"
    assert flags.system_flag("\\Recent") is None and flags.column("Work") is None


@pytest.mark.django_db
def test_flag_bits_read_the_columns_query_after_query(make_mailbox):
    """selectors.message_flag_bits's expression is built once and resolved by each query: the
    bits follow the columns as they change, for every folder and every call."""
    from mailboxes import selectors, services

    mailbox = make_mailbox("alice@example.org")
    for n in (1, 2, 3):
        raw = b"From: bob@example.net\r\nSubject: %d\r\n\r\nBody.\r\n" % n
        services.message_deliver(raw=raw, recipients=["alice@example.org"])
    inbox = selectors.folder_get(mailbox, "INBOX")

    def bits(**options) -> dict[int, int]:
        return {uid: b for uid, _modseq, _kw, b in selectors.message_flag_bits(inbox, **options)}

    assert bits() == {1: 0, 2: 0, 3: 0}
    services.messages_store_flags(folder=inbox, uids=[1], flags=["\\Seen", "\\Draft"], mode="add")
    services.messages_store_flags(
        folder=inbox, uids=[3], flags=["\\Answered", "\\Flagged", "\\Deleted"], mode="add"
    )
    assert bits() == {1: SystemFlag.SEEN | SystemFlag.DRAFT, 2: 0, 3: 2 | 4 | 8}
    services.messages_store_flags(folder=inbox, uids=[1], flags=["\\Seen"], mode="remove")
    assert bits(uids=[1, 2]) == {1: SystemFlag.DRAFT, 2: 0}
