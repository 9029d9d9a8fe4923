"""Reading configuration from the environment, with errors that name the variable.

Every setting Mailhost has comes from here (twelve-factor): settings.py calls these helpers,
nothing else reads os.environ.
"""

from __future__ import annotations

import ipaddress
import os
import socket
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
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and {maximum}" if maximum is not None else ""
        raise ImproperlyConfigured(f"{name}={value} must be between {minimum}{upper}")
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


def env_networks(name: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`10.0.0.1, 192.168.0.0/16, ::1` -> networks (an address is a network of one)."""
    raw = env_str(name)
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


def _parse_port(name: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise ImproperlyConfigured(f"{name}: port {text!r} is not a number") from None
    if not 0 < port < 65536:
        raise ImproperlyConfigured(f"{name}: port {port} is out of range")
    return port


def default_hostname() -> str:
    return socket.getfqdn() or "localhost"


def data_dir() -> Path:
    return Path(env_str("MAILHOST_DATA_DIR", "./var")).resolve()
