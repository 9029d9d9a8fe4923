"""A private, stock Postfix instance for the SMTP reference figures.

It runs from its own config directory (never the system's /etc/postfix, never port 25): smtpd
on a high loopback port, the virtual(8) delivery agent filing every message for the bench
domain into one Maildir. That is the same job Mailhost does on port 25 (accept, queue durably,
deliver into a mailbox), with Postfix's defaults everywhere else.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
DAEMON_DIRECTORY = "/usr/lib/postfix/sbin"
VMAIL_UID = 65534  # nobody: the virtual agent refuses root

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
command_directory = /usr/sbin
daemon_directory = {daemon_directory}
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_peername_lookup = no
smtputf8_enable = no
biff = no
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
virtual_mailbox_domains = {domain}
virtual_mailbox_base = {root}/mail
virtual_mailbox_maps = static:box/
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{uid}
"""

MASTER_CF = """\
{bind}:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def available() -> bool:
    return os.path.exists(POSTFIX) and os.path.isdir(DAEMON_DIRECTORY) and os.geteuid() == 0


def smtp_source_available() -> bool:
    return os.path.exists(SMTP_SOURCE)


class PostfixInstance:
    def __init__(
        self,
        root: Path,
        port: int,
        domain: str,
        bind: str = "127.0.0.1",
        relay: dict[str, tuple[str, int]] | None = None,
        milter: Path | None = None,
    ) -> None:
        self.root = root
        self.port = port
        self.bind = bind
        self.domain = domain
        # Domains relayed to a fixed host and port (the outbound sink), by smtp(8) with
        # Postfix's defaults (connection cache on demand, 20 sessions per destination).
        self.relay = relay or {}
        # A milter on this Unix socket sees every message smtpd accepts (OpenDKIM signing,
        # bench/reference_opendkim.py); a milter that fails tempfails the message.
        self.milter = milter
        self.config = root / "etc"
        self.maildir = root / "mail" / "box"
        self.started = False

    def start(self) -> None:
        # Postfix's daemons run as its own users: the directories must not inherit a private
        # umask (Mailhost's settings set 077, and test runs start the bench from there).
        umask = os.umask(0o022)
        try:
            self._start()
        finally:
            os.umask(umask)

    def _start(self) -> None:
        self.config.mkdir(parents=True, exist_ok=True)
        (self.root / "mail").mkdir(exist_ok=True)
        (self.root / "queue").mkdir(exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        pw = pwd.getpwnam("postfix")
        os.chown(self.root / "data", pw.pw_uid, pw.pw_gid)
        os.chown(self.root / "mail", VMAIL_UID, VMAIL_UID)
        main_cf = MAIN_CF.format(
            root=self.root,
            daemon_directory=DAEMON_DIRECTORY,
            domain=self.domain,
            uid=VMAIL_UID,
        )
        if self.relay:
            routes = ", ".join(
                f"{domain}=smtp:[{host}]:{port}" for domain, (host, port) in self.relay.items()
            )
            main_cf += f"transport_maps = inline:{{ {routes} }}\n"
        if self.milter:
            main_cf += f"smtpd_milters = unix:{self.milter}\n"
            main_cf += "milter_default_action = tempfail\n"
        (self.config / "main.cf").write_text(main_cf)
        (self.config / "master.cf").write_text(MASTER_CF.format(bind=self.bind, port=self.port))
        os.chmod(self.root, 0o755)
        self._postfix("start")
        self.started = True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            import socket

            try:
                with socket.create_connection((self.bind, self.port), timeout=1) as sock:
                    if sock.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"postfix did not answer on port {self.port}: {self.log_tail()}")

    def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        try:
            self._postfix("stop")
        except Exception:
            pass
        # `postfix stop` returns before master has exited; abort is the hard stop.
        pid_file = self.root / "queue" / "pid" / "master.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            try:
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, 0)
            except (OSError, ValueError, IndexError):
                break
            time.sleep(0.1)
        else:
            if pid_file.exists():
                try:
                    self._postfix("abort")
                except Exception:
                    pass

    def master_pid(self) -> int:
        return int((self.root / "queue" / "pid" / "master.pid").read_text().split()[0])

    def delivered(self) -> int:
        total = 0
        for sub in ("new", "cur"):
            try:
                total += len(os.listdir(self.maildir / sub))
            except FileNotFoundError:
                pass
        return total

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.root / "maillog").read_text().splitlines()[-lines:])
        except OSError:
            return ""

    def _postfix(self, action: str) -> None:
        subprocess.run(
            [POSTFIX, "-c", str(self.config), action],
            check=True,
            capture_output=True,
            timeout=60,
        )
