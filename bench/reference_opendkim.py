"""A private OpenDKIM milter for the outbound reference: Postfix cannot sign mail itself, so a
Postfix that relays mail as Mailhost does (every message DKIM-signed for the sender's domain)
runs OpenDKIM beside it, the usual pairing. It signs with a 2048-bit RSA key, relaxed/relaxed,
rsa-sha256: what Mailhost's own keys and signatures are. OpenDKIM's defaults everywhere else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"

CONF = """\
Mode s
Domain {domain}
Selector {selector}
KeyFile {key}
Socket local:{socket}
UMask 000
Canonicalization relaxed/relaxed
SignatureAlgorithm rsa-sha256
InternalHosts 127.0.0.0/8
Syslog no
PidFile {root}/opendkim.pid
RequireSafeKeys no
"""


def available() -> bool:
    return os.path.exists(OPENDKIM)


class OpenDKIMInstance:
    def __init__(self, root: Path, domain: str, selector: str = "bench") -> None:
        self.root = root
        # A Unix socket, as Debian's package sets it up: over loopback TCP, the milter's
        # small writes meet delayed ACKs and every message waits tens of milliseconds.
        self.socket = root / "opendkim.sock"
        self.domain = domain
        self.selector = selector
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.root.mkdir(parents=True, exist_ok=True)
        # Postfix's smtpd (its own user) connects to the socket in here.
        os.chmod(self.root, 0o755)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        key_file = self.root / "key.pem"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        # OpenDKIM refuses a key others may read.
        os.chmod(key_file, 0o600)
        conf = self.root / "opendkim.conf"
        conf.write_text(
            CONF.format(
                domain=self.domain,
                selector=self.selector,
                key=key_file,
                socket=self.socket,
                root=self.root,
            )
        )
        self.process = subprocess.Popen(
            [OPENDKIM, "-f", "-x", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "opendkim.log", "wb"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            if self.socket.exists():
                return
            time.sleep(0.1)
        raise RuntimeError(f"opendkim did not listen on {self.socket}: {self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.root / "opendkim.log").read_text().splitlines()[-lines:])
        except OSError:
            return ""
