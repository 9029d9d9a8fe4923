"""Reading configuration from the environment, with errors that name the variable.

Every setting Mailhost has comes from here (twelve-factor): settings.py calls these helpers,
nothing else reads os.environ.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import stat
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value


def env_int(name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if maximum is not None and not minimum <= value <= maximum:
        raise ImproperlyConfigured(f"{name}={value} must be between {minimum} and {maximum}")
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def env_port(name: str, default: int) -> int:
    return env_int(name, default, minimum=0, maximum=65535)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no)")


def env_host_ports(name: str) -> list[tuple[str, int]]:
    """Parse `host[:port],host[:port]` (IPv6 as `[::1]:53`); port defaults to 53."""
    raw = env_str(name)
    if not raw:
        return []
    result = []
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        host, port = item, 53
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest.startswith(":"):
                port = _parse_port(name, rest[1:])
        elif item.count(":") == 1:
            host, port_text = item.split(":")
            port = _parse_port(name, port_text)
        result.append((host, port))
    return result


def env_networks(
    name: str, default: str = ""
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`10.0.0.1, 192.168.0.0/16, ::1` -> networks (an address is a network of one)."""
    raw = env_str(name) or default
    networks = []
    for item in (raw or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}={raw!r}: {item!r} is not an IP address or network"
            ) from None
    return tuple(networks)


def env_host_port(name: str, default_port: int) -> tuple[str, int] | None:
    raw = env_str(name)
    if not raw:
        return None
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        port = _parse_port(name, rest[1:]) if rest.startswith(":") else default_port
        return host, port
    if raw.count(":") == 1:
        host, port_text = raw.split(":")
        return host, _parse_port(name, port_text)
    return raw, default_port


def env_fraction(name: str, default: float) -> float:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if not 0 < value <= 1:
        raise ImproperlyConfigured(f"{name}={raw} must be above 0 and at most 1")
    return value


def env_float(name: str, default: float) -> float:
    raw = env_str(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a finite number")
    return value


def env_scored_zones(name: str, default_score: float) -> tuple[tuple[str, float], ...]:
    """DNS list zones with an optional score each: `zen.spamhaus.org=4, list.example`."""
    raw = env_str(name) or ""
    zones = []
    for item in raw.split(","):
        if not item.strip():
            continue
        zone, sep, score_text = item.strip().partition("=")
        zone = zone.strip().rstrip(".").lower()
        if not is_hostname(zone):
            raise ImproperlyConfigured(f"{name}: {zone!r} is not a DNS zone name")
        score = default_score
        if sep:
            try:
                score = float(score_text)
            except ValueError:
                raise ImproperlyConfigured(
                    f"{name}: score {score_text.strip()!r} of {zone} is not a number"
                ) from None
        zones.append((zone, score))
    return tuple(zones)


def _parse_port(name: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: port {text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ImproperlyConfigured(f"{name}: port {port} is out of range")
    return port


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env_str(name)
    if raw is None:
        return default
    value = raw.strip()
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise ImproperlyConfigured(f"{name}={raw!r} must be one of {', '.join(choices)}")


def env_log_level(name: str, default: str) -> str:
    levels = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
    return env_choice(name, default, levels)


_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)", re.IGNORECASE)


def parse_duration(name: str, text: str) -> float:
    """Seconds from `90`, `0.5`, `30s`, `5m`, `1h`, `2d` (README's notation)."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ImproperlyConfigured(
            f"{name}: {text.strip()!r} is not a duration (seconds, or a number with s, m, h or d)"
        )
    return float(match[1]) * _DURATION_UNITS[match[2].lower()]


def env_duration(name: str, default: float, *, minimum: float = 0) -> float:
    raw = env_str(name)
    if raw is None or raw.strip() == "":
        return default
    value = parse_duration(name, raw)
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum:g} seconds")
    return value


def env_durations(name: str) -> tuple[float, ...]:
    """Comma-separated durations (`0, 5m, 10m, 1h`); unset gives ()."""
    raw = env_str(name) or ""
    return tuple(parse_duration(name, item) for item in raw.split(",") if item.strip())


def env_ip_address(name: str, default: str) -> str:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not an IP address (0.0.0.0 or :: for every address)"
        ) from None


def env_ip_addresses(name: str) -> tuple[str, ...]:
    """Comma-separated IP addresses (each one address, not a network)."""
    raw = env_str(name) or ""
    addresses = []
    for item in raw.split(","):
        if not item.strip():
            continue
        try:
            addresses.append(str(ipaddress.ip_address(item.strip())))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item.strip()!r} is not an IP address") from None
    return tuple(addresses)


def env_domain_names(name: str, default: str) -> tuple[str, ...]:
    """Comma-separated DNS names (A-labels)."""
    raw = env_str(name, default) or default
    names = tuple(item.strip().lower() for item in raw.split(",") if item.strip())
    for item in names:
        if not is_hostname(item):
            raise ImproperlyConfigured(f"{name}: {item!r} is not a domain name")
    return names


_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)", re.IGNORECASE)


def is_hostname(text: str) -> bool:
    """A DNS name (A-labels) whose last label is not all digits (so never an IP address)."""
    labels = text.rstrip(".").split(".")
    return (
        0 < len(text) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def env_hostname(name: str) -> str | None:
    raw = env_str(name)
    if raw is None:
        return None
    value = raw.strip().rstrip(".")
    try:
        value = value.encode("idna").decode("ascii")
    except UnicodeError:
        pass
    if not is_hostname(value):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a host name")
    return value.lower()


def env_file(name: str) -> str | None:
    """A path that must name an existing file (checked now, read later)."""
    raw = env_str(name)
    if raw is None:
        return None
    if not Path(raw).is_file():
        raise ImproperlyConfigured(f"{name}={raw!r}: no such file")
    return raw


def env_dir(name: str) -> str | None:
    """A path that must name an existing directory (checked now, read later)."""
    raw = env_str(name)
    if raw is None:
        return None
    if not Path(raw).is_dir():
        raise ImproperlyConfigured(f"{name}={raw!r}: no such directory")
    return raw


def env_url(name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env_str(name)
    if raw is None:
        return None
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.lower() not in schemes or not rest:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a URL of scheme {', '.join(s + '://' for s in schemes)}"
        )
    return raw


def env_host_names(name: str, default: str) -> list[str]:
    """Comma-separated host names or patterns as Django's ALLOWED_HOSTS takes them."""
    raw = env_str(name, default) or default
    hosts = [h.strip() for h in raw.split(",") if h.strip()]
    for host in hosts:
        if host != "*" and not is_hostname(host.removeprefix(".")) and not _is_ip(host):
            raise ImproperlyConfigured(
                f"{name}: {host!r} is not a host name (give names like mail.example.org, not URLs)"
            )
    return hosts or [default]


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def default_hostname() -> str:
    return socket.getfqdn() or "localhost"


def server_name_refusal(hostname: str, *, from_environment: bool) -> str | None:
    """Why `hostname` may not be this server's name (EHLO to other servers, Received,
    MAILER-DAEMON@, banners), or None. A name the operator set is taken as given; the
    machine's own name must be a fully qualified domain name that is not localhost."""
    if from_environment:
        return None
    name = hostname.lower().rstrip(".")
    if "." in name and name.split(".")[0] != "localhost" and name != "localhost.localdomain":
        return None
    return (
        f"MAILHOST_HOSTNAME is unset and this machine's name {hostname!r} is not a fully"
        " qualified domain name; set MAILHOST_HOSTNAME to this server's name in DNS (e.g."
        f" mail.example.org), or to {hostname!r} to use it anyway"
    )


def require_server_name() -> None:
    """Refuse to start what sends mail or greets clients on a name other servers reject."""
    from django.conf import settings

    refusal = server_name_refusal(
        settings.MAILHOST_HOSTNAME, from_environment=settings.MAILHOST_HOSTNAME_FROM_ENV
    )
    if refusal:
        raise ImproperlyConfigured(refusal)


# The data dir holds password hashes, DKIM and TLS private keys, the secret key and mail:
# nothing in it is for other users (Postfix and Dovecot keep their queues and indexes the same).
PRIVATE_UMASK = 0o077
PRIVATE_DIR_MODE = 0o700
# Entries under the data dir whose contents are also made private at start-up; the blob tree
# is not walked (it may hold millions of files): its directory's 0700 already hides them.
_PRIVATE_SUBDIRS = ("tls",)


def data_dir() -> Path:
    """MAILHOST_DATA_DIR, made if missing, private to this user (0700, files 0600).

    Sets the process's umask to 077, so that whatever is made in it later (the SQLite file and
    its -wal/-shm, blobs, certificates, keys) is private too."""
    raw = env_str("MAILHOST_DATA_DIR", "./var")
    path = Path(raw).resolve()
    if path.exists() and not path.is_dir():
        raise ImproperlyConfigured(f"MAILHOST_DATA_DIR={raw!r} is not a directory")
    os.umask(PRIVATE_UMASK)
    try:
        path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
        make_private(path)
    except OSError as exc:
        raise ImproperlyConfigured(
            f"MAILHOST_DATA_DIR={raw!r}: {exc.strerror or exc} ({path})"
        ) from None
    return path


def make_private(path: Path) -> None:
    """Take group and other permissions away from the data dir, the files directly in it, and
    the contents of its private subdirectories (installs made before the umask was set)."""
    _chmod_private(path)
    for entry in os.scandir(path):
        _chmod_private(Path(entry.path))
        if entry.name in _PRIVATE_SUBDIRS and entry.is_dir(follow_symlinks=False):
            for sub in Path(entry.path).rglob("*"):
                _chmod_private(sub)


def _chmod_private(path: Path) -> None:
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode) or st.st_uid != os.geteuid() or not st.st_mode & 0o077:
        return
    os.chmod(path, stat.S_IMODE(st.st_mode) & ~PRIVATE_UMASK)


_S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_S3_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def env_s3_bucket(name: str) -> str | None:
    """An S3 bucket name (3-63 lowercase letters, digits, dots and hyphens), or None."""
    raw = env_str(name)
    if raw is None:
        return None
    if not _S3_BUCKET.fullmatch(raw) or ".." in raw:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not an S3 bucket name (3-63 lowercase letters, digits, . and -)"
        )
    return raw


def env_s3_region(name: str) -> str | None:
    raw = env_str(name)
    if raw is None:
        return None
    if not _S3_REGION.fullmatch(raw):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a region name (like us-east-1)")
    return raw
