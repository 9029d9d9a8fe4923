"""The DNS records a hosted domain publishes, and a check of what DNS answers for them.

`domain_records(domain)` is the one list: `manage.py dnsrecords` prints it as zone-file
lines, `manage.py checkdns` and the admin's domain page check it against DNS
(`check_records`). Values are in presentation (zone-file) syntax; names are absolute, ASCII.

Choices, each for the mail Mailhost itself sends and receives:
- SPF `v=spf1 mx -all`: the domain's MX is this server, which is also the one that sends, so
  `mx` names exactly its addresses and follows them when they change; no address has to be
  known here. `-all`: nothing else sends as the domain (a smart host needs its own mechanism).
- DMARC `p=quarantine`: every message Mailhost sends for the domain is DKIM-signed with
  d=DOMAIN and leaves from the MX that SPF allows, so both align (RFC 7489 3.1) and mail of
  ours passes; `p=none` would leave the domain spoofable, `p=reject` would lose, rather than
  file as spam, mail a forwarder breaks. Aggregate reports go to dmarc-reports@DOMAIN.
- MTA-STS mode from MAILHOST_MTA_STS_MODE (`testing` by default: a certificate that does not
  yet match must not make senders refuse mail; RFC 8461 5).
- SRV: both RFC 6186 (STARTTLS on 143/110/587) and RFC 8314 (implicit TLS on 993/995/465)
  forms with the configured ports, implicit TLS first by priority (RFC 8314 prefers it), and
  RFC 5804's _sieve for ManageSieve (STARTTLS only, so one record).
  Every listener is always offered, so no record has the "not offered" target ".".
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from enum import Enum

from django.conf import settings

from delivery.dkim import dkim_public_key_value
from mailboxes import selectors
from mailboxes.models import Domain

TXT_STRING_MAX = 255  # RFC 1035 3.3: a <character-string> is at most 255 octets
MTA_STS_MAX_AGE = 604800  # one week (RFC 8461 3.2 suggests weeks; at most 31557600)
SPF_VALUE = "v=spf1 mx -all"
# RFC 7208 2.3: receivers check the HELO name too, and it is the only identity a bounce
# (MAIL FROM:<>) has; "a" names the server's own addresses.
HELO_SPF_VALUE = "v=spf1 a -all"
DMARC_POLICY = "quarantine"
# Mail to these is read as reports (mailboxes.selectors.recipient_resolve, delivery/reports.py).
DMARC_RUA_LOCAL_PART = selectors.REPORT_DMARC_LOCAL_PART
TLSRPT_RUA_LOCAL_PART = selectors.REPORT_TLS_LOCAL_PART
MX_PREFERENCE = 10
# RFC 6186 3.4: clients compare priorities across a service's STARTTLS and TLS records
# (lower first); RFC 8314 prefers implicit TLS, and 5.1 adds its SRV names.
SRV_PRIORITY_IMPLICIT_TLS = 0
SRV_PRIORITY_STARTTLS = 10
SRV_WEIGHT = 1


@dataclass(frozen=True)
class Record:
    name: str  # absolute, without the final dot
    type: str
    value: str | None  # presentation syntax; None when it cannot be known (see `note`)
    note: str = ""  # why, for a record whose value is unknown

    @property
    def zone_line(self) -> str:
        if self.value is None:
            return f"; {self.name} {self.type}: {self.note}"
        return f"{self.name}. IN {self.type} {self.value}"


def txt_value(text: str) -> str:
    """TXT presentation: quoted strings of at most 255 octets each (RFC 1035 3.3.14)."""
    data = text.encode("ascii")
    chunks = [data[i : i + TXT_STRING_MAX] for i in range(0, len(data), TXT_STRING_MAX)] or [b""]
    return " ".join(
        '"' + chunk.decode("ascii").replace("\\", "\\\\").replace('"', '\\"') + '"'
        for chunk in chunks
    )


def mta_sts_policy() -> str:
    """The policy served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461 3.2)."""
    lines = [
        "version: STSv1",
        f"mode: {settings.MAILHOST_MTA_STS_MODE}",
        f"mx: {settings.MAILHOST_HOSTNAME}",
        f"max_age: {MTA_STS_MAX_AGE}",
    ]
    return "\r\n".join(lines) + "\r\n"


def mta_sts_id() -> str:
    # RFC 8461 3.1: 1 to 32 alphanumeric characters that change when the policy does.
    return hashlib.sha256(mta_sts_policy().encode()).hexdigest()[:20]


def public_addresses() -> list[str]:
    """This server's public addresses: MAILHOST_PUBLIC_ADDRESSES, else MAILHOST_BIND when it
    names one address that others can reach (not 0.0.0.0/::, not loopback); else none."""
    if settings.MAILHOST_PUBLIC_ADDRESSES:
        return list(settings.MAILHOST_PUBLIC_ADDRESSES)
    bind = ipaddress.ip_address(settings.MAILHOST_BIND)
    if bind.is_unspecified or bind.is_loopback or bind.is_link_local:
        return []
    return [str(bind)]


def domain_records(domain: Domain, *, addresses: list[str] | None = None) -> list[Record]:
    """Every record to publish for `domain`; `addresses` overrides public_addresses()."""
    name = domain.name
    host = settings.MAILHOST_HOSTNAME.rstrip(".")
    target = f"{host}."
    records = [
        Record(name, "MX", f"{MX_PREFERENCE} {target}"),
        Record(name, "TXT", txt_value(SPF_VALUE)),
    ]
    records.extend(dkim_records(domain))
    dmarc = f"v=DMARC1; p={DMARC_POLICY}; rua=mailto:{DMARC_RUA_LOCAL_PART}@{name}"
    records += [
        Record(f"_dmarc.{name}", "TXT", txt_value(dmarc)),
        Record(f"_mta-sts.{name}", "TXT", txt_value(f"v=STSv1; id={mta_sts_id()}")),
        Record(f"mta-sts.{name}", "CNAME", target),
        Record(
            f"_smtp._tls.{name}",
            "TXT",
            txt_value(f"v=TLSRPTv1; rua=mailto:{TLSRPT_RUA_LOCAL_PART}@{name}"),
        ),
        Record(f"autoconfig.{name}", "CNAME", target),
        Record(f"autodiscover.{name}", "CNAME", target),
    ]
    srv = [
        ("_submissions", settings.MAILHOST_SUBMISSIONS_PORT, SRV_PRIORITY_IMPLICIT_TLS),
        ("_submission", settings.MAILHOST_SUBMISSION_PORT, SRV_PRIORITY_STARTTLS),
        ("_imaps", settings.MAILHOST_IMAPS_PORT, SRV_PRIORITY_IMPLICIT_TLS),
        ("_imap", settings.MAILHOST_IMAP_PORT, SRV_PRIORITY_STARTTLS),
        ("_pop3s", settings.MAILHOST_POP3S_PORT, SRV_PRIORITY_IMPLICIT_TLS),
        ("_pop3", settings.MAILHOST_POP3_PORT, SRV_PRIORITY_STARTTLS),
        # RFC 5804 1.8: ManageSieve clients look up _sieve._tcp before port 4190.
        ("_sieve", settings.MAILHOST_MANAGESIEVE_PORT, SRV_PRIORITY_IMPLICIT_TLS),
    ]
    records += [
        Record(f"{service}._tcp.{name}", "SRV", f"{priority} {SRV_WEIGHT} {port} {target}")
        for service, port, priority in srv
    ]
    # RFC 8659 4: CAA at the domain covers the names under it (mta-sts., autoconfig., ...).
    records += [
        Record(name, "CAA", f'0 issue "{issuer}"') for issuer in settings.MAILHOST_CAA_ISSUERS
    ]
    if host != name:  # a server named as the domain has the domain's SPF record
        records.append(Record(host, "TXT", txt_value(HELO_SPF_VALUE)))
    records += server_records(host, public_addresses() if addresses is None else addresses)
    return records


def dkim_records(domain: Domain) -> list[Record]:
    """The TXT record of each DKIM key of the domain not retired (RFC 6376 3.6.2.2): the active
    one, a new one published ahead of its activation, an old one kept while mail it signed
    is in flight."""
    keys = selectors.domain_dkim_keys(domain, published=True)
    return [
        Record(f"{key.selector}._domainkey.{domain.name}", "TXT", txt_value(value))
        for key in keys
        if (value := dkim_public_key_value(key))
    ]


def server_records(host: str, addresses: list[str]) -> list[Record]:
    """A/AAAA of the server's name and the PTR of each address back to it (FCrDNS: many
    receivers refuse mail from an address whose reverse name does not resolve back)."""
    if not addresses:
        note = (
            "the server's public address is unknown (set MAILHOST_PUBLIC_ADDRESSES"
            " or pass --address)"
        )
        return [
            Record(host, "A", None, note),
            Record("the server's address", "PTR", None, f"should name {host}.; {note}"),
        ]
    records = []
    for text in addresses:
        address = ipaddress.ip_address(text)
        records.append(Record(host, "A" if address.version == 4 else "AAAA", str(address)))
    for text in addresses:
        reverse = ipaddress.ip_address(text).reverse_pointer
        records.append(Record(reverse, "PTR", f"{host}."))
    return records


# --- checking ------------------------------------------------------------------------------


class Status(Enum):
    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"
    UNKNOWN = "unknown"
    ERROR = "error"


@dataclass(frozen=True)
class Check:
    record: Record
    status: Status
    found: tuple[str, ...] = ()
    detail: str = ""

    @property
    def line(self) -> str:
        label = f"{self.record.name} {self.record.type}"
        if self.status is Status.WRONG:
            return f"{label}: wrong (found: {'; '.join(self.found)})"
        if self.status in (Status.UNKNOWN, Status.ERROR):
            return f"{label}: {self.status.value} ({self.detail})"
        return f"{label}: {self.status.value}"


# Types where anything besides the expected record is wrong: a second MX or SRV target sends
# mail or clients elsewhere, a second SPF record is a permerror (RFC 7208 4.5).
EXCLUSIVE_TYPES = {"MX", "CNAME", "SRV", "PTR", "TXT"}


def _txt_tag(text: str) -> str:
    # The version tag that tells one TXT record from the others at the same name.
    return text.split(";", 1)[0].split(" ", 1)[0].strip()


CHECK_THREADS = 24  # about one per record: the admin page waits for the slowest, not the sum


def check_records(records: list[Record], resolver=None) -> list[Check]:
    """Ask DNS for each record (MAILHOST_DNS_SERVERS, as delivery does), in parallel, so that
    an unanswering resolver costs about one MAILHOST_DNS_TIMEOUT, not one per record."""
    from concurrent.futures import ThreadPoolExecutor

    from delivery.dns import DNSPythonResolver

    resolver = resolver or DNSPythonResolver()
    with ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="checkdns") as pool:
        return list(pool.map(lambda record: check_record(record, resolver), records))


def check_record(record: Record, resolver) -> Check:
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    from delivery.dns import DNSError, NoSuchDomain

    if record.value is None:
        return Check(record, Status.UNKNOWN, detail=record.note)
    rdtype = dns.rdatatype.from_text(record.type)
    expected = dns.rdata.from_text(dns.rdataclass.IN, rdtype, record.value)
    try:
        found = resolver.rdatas(record.name, record.type)
    except NoSuchDomain:
        found = []
    except DNSError as exc:
        return Check(
            record, Status.ERROR, detail=exc.text.removeprefix(f"{record.name} {record.type}: ")
        )
    if record.type == "TXT":
        text = _txt_text(expected)
        found_texts = [_txt_text(r) for r in found]
        same_kind = [t for t in found_texts if _txt_tag(t) == _txt_tag(text)]
        if not same_kind:
            return Check(record, Status.MISSING)
        if same_kind == [text]:
            return Check(record, Status.OK)
        return Check(record, Status.WRONG, found=tuple(sorted(same_kind)))
    if not found:
        return Check(record, Status.MISSING)
    if expected in found and (record.type not in EXCLUSIVE_TYPES or len(found) == 1):
        return Check(record, Status.OK)
    return Check(record, Status.WRONG, found=tuple(sorted(r.to_text() for r in found)))


def _txt_text(rdata) -> str:
    return b"".join(rdata.strings).decode("utf-8", "replace")


def records_for(domain_name: str, *, addresses: list[str] | None = None) -> list[Record]:
    """The records of the hosted domain called `domain_name`; LookupError when not hosted."""
    from mailboxes.selectors import domain_get

    domain = domain_get(domain_name)
    if domain is None:
        raise LookupError(f"{domain_name} is not a hosted domain")
    return domain_records(domain, addresses=addresses)
