"""Which process holds a socket, from /proc (Linux): tests that run several server processes
find the one serving, or sending on, a given connection."""

from __future__ import annotations

import os
from collections.abc import Iterable


def holder(inodes: Iterable[str], pids: Iterable[int]) -> int | None:
    """The first of `pids` with a descriptor on one of the socket `inodes` (/proc/net/tcp's
    inode column), or None."""
    targets = {f"socket:[{inode}]" for inode in inodes}
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    return pid
            except OSError:
                continue
    return None
