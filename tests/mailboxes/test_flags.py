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
