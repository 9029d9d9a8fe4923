"""Is this server ready for the world? The checks `manage.py checkdeploy` runs, in the spirit
of Django's `check --deploy`, for the mail settings.

Each check is a function returning Results (one line each: ok, warn or fail, and what to do);
the command prints them and exits non-zero when any fails. Nothing here changes anything: a
check that would need a certificate generated, a port bound or a row written says so instead.

Decisions:
- A self-signed certificate (the generated one, or a given one that signed itself) is `fail`,
  not `warn`: mail clients show a warning their users learn to click through (defeating TLS
  for every password sent after it), senders that verify (MTA-STS in enforce mode, which
  `dnsrecords` publishes the policy for; DANE) refuse to deliver, and other servers' opportunistic
  TLS is no protection against an active attacker. Mail still flows, which is why a server in
  a test lab may run with one; a production deploy may not.
- The hostname must resolve to this host through the resolvers delivery asks
  (MAILHOST_DNS_SERVERS), not /etc/hosts: that is what other servers see. An address is this
  host's when it can be bound here, is MAILHOST_BIND, or is listed in
  MAILHOST_PUBLIC_ADDRESSES (behind NAT the public address is on no interface). A loopback
  answer is `warn`: it is this host, but no other server can reach it.
- The relay test set goes through the code the port-25 session runs for RCPT
  (syntax.split_path, then accept.recipient_verdict without authentication, the replies
  handler.RECIPIENT_REPLIES maps them to), with no network: a form accepted for a hosted
  address (a catch-all) is delivered here, not relayed, and passes.
"""

from __future__ import annotations

import datetime
import enum
import ipaddress
import socket
import ssl
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

REMOTE_DOMAIN = "remote.test"  # RFC 2606: never a hosted domain anywhere
# Classic relay tricks (Sendmail's and the open-relay testers' list): each names a mailbox
# in REMOTE_DOMAIN, some hidden in the local part or a source route of a hosted address.
RELAY_FORMS = (
    "<user@{remote}>",
    "<user%{remote}@{hosted}>",
    '<"user@{remote}"@{hosted}>',
    "<@{hosted}:user@{remote}>",
    "<{remote}!user@{hosted}>",
)
# Listener port settings, whether the port speaks TLS from the first byte, and the start of
# the greeting it sends (RFC 5321 4.2, RFC 9051 7.1.1, RFC 1939 4).
LISTENER_PORTS = (
    ("MAILHOST_SMTP_PORT", False, "220"),
    ("MAILHOST_SUBMISSION_PORT", False, "220"),
    ("MAILHOST_SUBMISSIONS_PORT", True, "220"),
    ("MAILHOST_IMAP_PORT", False, "* OK"),
    ("MAILHOST_IMAPS_PORT", True, "* OK"),
    ("MAILHOST_POP3_PORT", False, "+OK"),
    ("MAILHOST_POP3S_PORT", True, "+OK"),
    # RFC 5804 1.7: ManageSieve greets with its capability list, IMPLEMENTATION first here.
    ("MAILHOST_MANAGESIEVE_PORT", False, '"IMPLEMENTATION"'),
)
PORT_TIMEOUT = 10.0  # seconds to connect and read a greeting
TLS_EXPIRY_WARNING = datetime.timedelta(days=14)  # ACME renews at 30 days; 14 means it failed
GREETING_MAX = 512


class Status(enum.Enum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Result:
    check: str
    status: Status
    text: str  # what was found and, unless ok, what to do

    @property
    def line(self) -> str:
        return f"{self.status.value:<4} {self.check}: {self.text}"


# --- hostname ------------------------------------------------------------------------------


def check_hostname() -> list[Result]:
    name = settings.MAILHOST_HOSTNAME.lower().rstrip(".")
    fix = "set MAILHOST_HOSTNAME to this server's name in DNS (e.g. mail.example.org)"
    refusal = _hostname_refusal(name)
    if refusal:
        return [Result("hostname", Status.FAIL, f"MAILHOST_HOSTNAME={name} {refusal}; {fix}")]
    from delivery.dns import DNSError, get_resolver

    try:
        addresses = get_resolver().addresses(name)
    except DNSError as exc:
        return [
            Result(
                "hostname",
                Status.FAIL,
                f"{name} does not resolve ({exc.text}); publish its A/AAAA record"
                " (manage.py dnsrecords DOMAIN prints it)",
            )
        ]
    if not addresses:
        return [Result("hostname", Status.FAIL, f"{name} has no A or AAAA record; publish one")]
    found = ", ".join(addresses)
    ours = [a for a in addresses if _is_ours(a) and not ipaddress.ip_address(a).is_loopback]
    if ours:
        return [Result("hostname", Status.OK, f"{name} resolves to {found} (this host)")]
    if any(ipaddress.ip_address(a).is_loopback for a in addresses):
        return [
            Result(
                "hostname",
                Status.WARN,
                f"{name} resolves to {found}: loopback, which no other server can reach;"
                " publish this host's public address",
            )
        ]
    return [
        Result(
            "hostname",
            Status.FAIL,
            f"{name} resolves to {found}, none of them this host's; point its A/AAAA record"
            " here, or list the address in MAILHOST_PUBLIC_ADDRESSES when this host is behind NAT",
        )
    ]


def _hostname_refusal(name: str) -> str | None:
    try:
        ipaddress.ip_address(name)
        return "is an address, not a name"
    except ValueError:
        pass
    labels = name.split(".")
    # RFC 6761 6.3: localhost and every name under it are this machine everywhere.
    if labels[-1] == "localhost" or labels[0] == "localhost" or name == "localhost.localdomain":
        return "is localhost"
    if len(labels) < 2:
        return "is not a fully qualified domain name"
    return None


def _is_ours(address: str) -> bool:
    if address == settings.MAILHOST_BIND or address in settings.MAILHOST_PUBLIC_ADDRESSES:
        return True
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    # Binding succeeds only for an address on one of this host's interfaces.
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError:
            return False
    return True


# --- TLS -----------------------------------------------------------------------------------


def check_tls() -> list[Result]:
    if not settings.MAILHOST_TLS_CERT and settings.MAILHOST_ACME_DIRECTORY:
        from mailhost import acme

        cert_path, key_path = (str(p) for p in acme.certificate_files())
        if not Path(cert_path).exists():
            return [
                Result(
                    "tls",
                    Status.FAIL,
                    f"no ACME certificate yet ({cert_path}): runmail asks"
                    f" {settings.MAILHOST_ACME_DIRECTORY} for one at start-up (see `acme failed`"
                    " in its log), or run `manage.py acmecert` while it runs",
                )
            ]
        return _check_certificate(cert_path, key_path, f"ACME certificate {cert_path}")
    if not settings.MAILHOST_TLS_CERT:
        # mailhost/tls.py generates one into the data dir exactly when this is unset.
        return [
            Result(
                "tls",
                Status.FAIL,
                "self-signed certificate (generated in MAILHOST_DATA_DIR/tls): clients warn and"
                " verifying senders refuse; set MAILHOST_TLS_CERT and MAILHOST_TLS_KEY to a"
                f" certificate from a CA (e.g. Let's Encrypt) for {settings.MAILHOST_HOSTNAME}",
            )
        ]
    cert_path, key_path = settings.MAILHOST_TLS_CERT, settings.MAILHOST_TLS_KEY
    return _check_certificate(cert_path, key_path, f"MAILHOST_TLS_CERT={cert_path}")


def _check_certificate(cert_path: str, key_path: str, where: str) -> list[Result]:
    from cryptography import x509

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert_path, key_path)
        cert = x509.load_pem_x509_certificates(Path(cert_path).read_bytes())[0]
    except (OSError, ValueError, ssl.SSLError) as exc:
        return [
            Result(
                "tls",
                Status.FAIL,
                f"{where}, key {key_path}: cannot load the pair ({exc});"
                " give the certificate (chain) and its own private key, both PEM",
            )
        ]
    if _self_signed(cert):
        return [
            Result(
                "tls",
                Status.FAIL,
                f"{where} is self-signed: clients warn and verifying senders refuse; use a"
                " certificate from a CA (e.g. Let's Encrypt)",
            )
        ]
    now = datetime.datetime.now(datetime.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return [
            Result(
                "tls",
                Status.FAIL,
                f"{where} is valid from {cert.not_valid_before_utc:%Y-%m-%d} to"
                f" {cert.not_valid_after_utc:%Y-%m-%d}, not now; renew it",
            )
        ]
    names = _dns_names(cert)
    if not any(_name_matches(pattern, settings.MAILHOST_HOSTNAME) for pattern in names):
        return [
            Result(
                "tls",
                Status.FAIL,
                f"{where} names {', '.join(names) or 'nothing'}, not"
                f" {settings.MAILHOST_HOSTNAME}; get one for MAILHOST_HOSTNAME",
            )
        ]
    expires = f"expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    if cert.not_valid_after_utc - now < TLS_EXPIRY_WARNING:
        return [Result("tls", Status.WARN, f"{where} {expires}; renew it now")]
    issuer = cert.issuer.rfc4514_string()
    return [
        Result(
            "tls", Status.OK, f"{where} for {settings.MAILHOST_HOSTNAME}, from {issuer}, {expires}"
        )
    ]


def _self_signed(cert) -> bool:
    from cryptography.exceptions import InvalidSignature

    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _dns_names(cert) -> list[str]:
    from cryptography import x509

    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []  # clients ignore the CN (RFC 9525 6.3): a certificate without SAN names nothing
    return [name.lower() for name in alt.get_values_for_type(x509.DNSName)]


def _name_matches(pattern: str, hostname: str) -> bool:
    hostname = hostname.lower().rstrip(".")
    if pattern.startswith("*."):
        # RFC 6125 6.4.3: the wildcard stands for exactly one left-most label.
        head, _, rest = hostname.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == hostname


# --- relay ---------------------------------------------------------------------------------


def check_relay() -> list[Result]:
    from delivery import accept
    from mailboxes.models import Domain
    from mailboxes.outcomes import Outcome
    from protocols.smtp import syntax
    from protocols.smtp.handler import RECIPIENT_REPLIES
    from protocols.smtp.replies import S550_NO_SUCH_USER

    hosted = (
        Domain.objects.filter(active=True).order_by("id").values_list("name", flat=True).first()
        or settings.MAILHOST_HOSTNAME
    )
    results = []
    for form in RELAY_FORMS:
        arg = form.format(remote=REMOTE_DOMAIN, hosted=hosted)
        try:
            address, _ = syntax.split_path(arg, allow_postmaster=True)
        except syntax.SyntaxProblem as problem:
            results.append(Result("relay", Status.OK, f"RCPT TO:{arg} refused: {problem.reply}"))
            continue
        status, resolution = accept.recipient_verdict(address, relay_allowed=False)
        if status is not Outcome.OK:
            reply = RECIPIENT_REPLIES.get(status, S550_NO_SUCH_USER)
            results.append(Result("relay", Status.OK, f"RCPT TO:{arg} refused: {reply}"))
        elif resolution is not None and resolution.hosted:
            results.append(
                Result("relay", Status.OK, f"RCPT TO:{arg} accepted for {address}, hosted here")
            )
        else:
            results.append(
                Result(
                    "relay",
                    Status.FAIL,
                    f"RCPT TO:{arg} ACCEPTED without authentication: an open relay for"
                    f" {address}; port 25 must take mail for hosted domains only",
                )
            )
    return results


# --- data dir ------------------------------------------------------------------------------


def check_data_dir(data_dir: Path | None = None, sqlite_path: Path | None = None) -> list[Result]:
    """Modes of the data dir, the SQLite database (and its -wal/-shm), tls/, and the TLS key:
    any of them readable or writable by others is `fail`, by the group `warn`."""
    data_dir = Path(settings.DATA_DIR if data_dir is None else data_dir)
    if sqlite_path is None:
        sqlite_path = _sqlite_path()
    paths = [data_dir]
    if sqlite_path is not None:
        paths += [sqlite_path, Path(f"{sqlite_path}-wal"), Path(f"{sqlite_path}-shm")]
    tls_dir = data_dir / "tls"
    if tls_dir.is_dir():
        paths += [tls_dir, *sorted(tls_dir.iterdir())]
    if settings.MAILHOST_TLS_KEY:
        paths.append(Path(settings.MAILHOST_TLS_KEY))
    if not data_dir.is_dir():
        return [Result("data_dir", Status.FAIL, f"MAILHOST_DATA_DIR={data_dir} is not a directory")]
    others, group = [], []
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & (stat.S_IROTH | stat.S_IWOTH):
            others.append(f"{path} ({mode:04o})")
        elif mode & (stat.S_IRGRP | stat.S_IWGRP):
            group.append(f"{path} ({mode:04o})")
    if others:
        return [
            Result(
                "data_dir",
                Status.FAIL,
                f"readable or writable by others: {', '.join(others)}; it holds mail, password"
                " hashes and private keys: chmod go-rwx (0700 directories, 0600 files)",
            )
        ]
    if group:
        return [
            Result(
                "data_dir",
                Status.WARN,
                f"open to the group: {', '.join(group)}; chmod g-rw unless the group is meant"
                " to read mail and keys",
            )
        ]
    return [Result("data_dir", Status.OK, f"{data_dir} and what it holds are private to its owner")]


def _sqlite_path() -> Path | None:
    from django.db import connection

    if connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict["NAME"])
    return None if name == ":memory:" or name.startswith("file:") else Path(name)


# --- ports ---------------------------------------------------------------------------------


def check_ports() -> list[Result]:
    bind = settings.MAILHOST_BIND
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(bind, bind)
    results = []
    for setting, implicit_tls, greeting in LISTENER_PORTS:
        port = getattr(settings, setting)
        if port == 0:
            results.append(
                Result("ports", Status.FAIL, f"{setting}=0 picks a free port no client can find")
            )
            continue
        try:
            line = _greeting(host, port, implicit_tls)
        except (OSError, ssl.SSLError) as exc:
            why = exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
            results.append(
                Result(
                    "ports",
                    Status.FAIL,
                    f"{setting}={port} on {host}: {why}; start the listener (runmail, or"
                    " runsmtp/runimap/runpop3/runmanagesieve) or correct the setting",
                )
            )
            continue
        if line.startswith(greeting):
            results.append(Result("ports", Status.OK, f"{setting}={port} on {host}: {line}"))
        else:
            results.append(
                Result(
                    "ports",
                    Status.FAIL,
                    f"{setting}={port} on {host} greeted {line!r}, not {greeting!r}: another"
                    " service has the port, or the listener refuses connections",
                )
            )
    return results


def _greeting(host: str, port: int, implicit_tls: bool) -> str:
    with socket.create_connection((host, port), timeout=PORT_TIMEOUT) as raw:
        sock = raw
        if implicit_tls:
            # Reachability only: the certificate is check_tls's business.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            sock = context.wrap_socket(raw, server_hostname=settings.MAILHOST_HOSTNAME)
        data = b""
        while b"\n" not in data and len(data) < GREETING_MAX:
            chunk = sock.recv(GREETING_MAX)
            if not chunk:
                break
            data += chunk
        if not data:
            raise OSError("closed without a greeting")
        return data.split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")


CHECKS: dict[str, Callable[[], list[Result]]] = {
    "hostname": check_hostname,
    "tls": check_tls,
    "relay": check_relay,
    "data_dir": check_data_dir,
    "ports": check_ports,
}


def run_checks(skip: tuple[str, ...] = ()) -> list[Result]:
    return [result for name, check in CHECKS.items() if name not in skip for result in check()]
