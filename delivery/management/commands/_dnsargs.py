"""What dnsrecords and checkdns share: the domain argument and --address."""

from __future__ import annotations

import ipaddress

from django.core.management.base import CommandError

from delivery.dnsrecords import Record, records_for


def add_arguments(parser) -> None:
    parser.add_argument("domain", help="a hosted domain")
    parser.add_argument(
        "--address",
        action="append",
        metavar="IP",
        help="the server's public address (repeat for IPv4 and IPv6); default:"
        " MAILHOST_PUBLIC_ADDRESSES, else MAILHOST_BIND when it is one reachable address",
    )


def records(options) -> list[Record]:
    addresses = None
    if options.get("address"):
        try:
            addresses = [str(ipaddress.ip_address(a)) for a in options["address"]]
        except ValueError as exc:
            raise CommandError(f"--address: {exc}") from None
    try:
        return records_for(options["domain"], addresses=addresses)
    except LookupError as exc:
        raise CommandError(str(exc)) from None
