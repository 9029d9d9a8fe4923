"""A private, stock Dovecot: the IMAP reference figure (imaptest against both servers, through
bench/reference_dovecot.py) and the source server of the importimap tests.

It runs as a child process (`dovecot -F`) from a config generated into its own directory,
never the system's /etc/dovecot: IMAP only, on a high loopback port, plaintext LOGIN allowed
(as the bench allows it for Mailhost), one user from a passwd-file, Maildir under the same
directory, Dovecot's defaults everywhere else (fsync included). Run by root, the login and
internal processes use the package's dovenull/dovecot users and the mail processes `nobody`
(Dovecot refuses mail access as root); run by anyone else, everything runs as that user,
without chroot. Given a certificate and key (`tls`), it also offers STARTTLS on the port and
implicit TLS on `imaps_port`; `extra_config` is appended to the generated config.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
NOBODY = 65534

CONFIG = """\
protocols = imap
listen = {bind}
base_dir = {root}/run
state_dir = {root}/state
instance_name = mailhost-bench-{port}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
{as_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%n
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
}}
{extra}
service anvil {{
  {chroot}
}}
service imap-login {{
  {chroot}
  inet_listener imap {{
    address = {bind}
    port = {port}
  }}
  inet_listener imaps {{
    address = {bind}
    port = {imaps_port}
  }}
}}
"""


def available() -> bool:
    return os.path.exists(DOVECOT) and os.path.exists("/usr/lib/dovecot/imap")


@contextlib.contextmanager
def running(
    user: str,
    password: str,
    *,
    tls: tuple[Path, Path] | None = None,
    extra_config: str = "",
) -> Iterator[DovecotInstance]:
    """A started Dovecot with one user (and implicit TLS on a port of its own, given `tls`),
    in a directory of its own (not under pytest's 0700 tmp_path: Dovecot's mail processes, as
    nobody, must reach the home), stopped and removed after."""
    from bench.mailhost_process import free_port

    root = Path(tempfile.mkdtemp(prefix="mh-dovecot-"))
    reference = DovecotInstance(
        root,
        free_port(),
        user,
        password,
        tls=tls,
        imaps_port=free_port() if tls else 0,
        extra_config=extra_config,
    )
    try:
        reference.start()
        yield reference
    finally:
        reference.stop()
        shutil.rmtree(root, ignore_errors=True)


class DovecotInstance:
    def __init__(
        self,
        root: Path,
        port: int,
        user: str,
        password: str,
        *,
        tls: tuple[Path, Path] | None = None,
        imaps_port: int = 0,
        extra_config: str = "",
    ) -> None:
        self.root = root
        self.tls = tls
        self.imaps_port = imaps_port if tls else 0
        self.extra_config = extra_config
        self.port = port
        self.user = user
        self.password = password
        self.bind = "127.0.0.1"
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 20) -> None:
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        settings = {
            "root": self.root,
            "bind": self.bind,
            "port": self.port,
            "imaps_port": self.imaps_port,
            "extra": self.extra_config,
            "ssl": f"ssl = yes\nssl_cert = <{self.tls[0]}\nssl_key = <{self.tls[1]}"
            if self.tls
            else "ssl = no",
        }
        if os.geteuid() == 0:
            settings |= {"uid": NOBODY, "gid": NOBODY, "as_user": "", "chroot": ""}
            os.chown(self.root / "home", NOBODY, NOBODY)
            self.root.chmod(0o755)
        else:
            uid, gid = os.getuid(), os.getgid()
            user, group = pwd.getpwuid(uid).pw_name, grp.getgrgid(gid).gr_name
            settings |= {
                "uid": uid,
                "gid": gid,
                "as_user": f"default_internal_user = {user}\ndefault_login_user = {user}\n"
                f"default_internal_group = {group}",
                "chroot": "chroot =",  # only root may chroot
            }
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        (self.root / "passwd").chmod(
            0o644
        )  # read by the auth process (dovecot), whatever the umask
        config = self.root / "dovecot.conf"
        config.write_text(CONFIG.format(**settings))
        with open(self.root / "dovecot.stderr", "wb") as stderr:
            self.process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited early: {self.log_tail()}")
            try:
                with socket.create_connection((self.bind, self.port), timeout=1) as sock:
                    if sock.recv(200).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dovecot did not answer on port {self.port}: {self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # The master stops its children on SIGTERM; the group is ours alone (new session).
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)

    def log_tail(self, lines: int = 20) -> str:
        text = ""
        for name in ("dovecot.stderr", "dovecot.log"):
            try:
                text += (self.root / name).read_text(errors="replace")
            except OSError:
                pass
        return "\n".join(text.splitlines()[-lines:])
