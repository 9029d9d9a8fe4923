"""The secret key, generated once into the data dir when the environment gives none."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def persistent_secret_key(directory: Path) -> str:
    path = directory / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    directory.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(50)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    try:
        os.link(tmp, path)  # first writer wins, a concurrent start reads the winner's key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
