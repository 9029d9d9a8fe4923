"""The stock Dovecot of the IMAP reference figure: tests/support/dovecot.py (the importimap
tests start the same one)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.dovecot import DOVECOT, DovecotInstance, available  # noqa: E402

__all__ = ["DOVECOT", "DovecotInstance", "available"]
