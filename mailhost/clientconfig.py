"""What mail clients are told about this server: Thunderbird's autoconfig, Microsoft's
Autodiscover (the POX XML form and the JSON v2 redirect to it), Apple's configuration profile.

Pure builders: each takes the server's names and ports (`Servers`, from settings) and returns
the document's bytes; mailhost/wellknown.py serves them. None of them says whether a mailbox
exists: they answer alike for any address at a hosted domain.
"""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from django.conf import settings

# https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat
AUTOCONFIG_VERSION = "1.1"
# Outlook's POX Autodiscover (MS-OXDSCLI 2.2.4): the request and the two response namespaces.
AUTODISCOVER_REQUEST_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
)
AUTODISCOVER_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
AUTODISCOVER_OUTLOOK_NS = (
    "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)
AUTODISCOVER_MAX_REQUEST = 16 * 1024  # an honest request is a few hundred octets
# Autodiscover v2 (JSON) answers only this protocol: where the POX endpoint is.
AUTODISCOVER_V1 = "AutodiscoverV1"
MOBILECONFIG_CONTENT_TYPE = "application/x-apple-aspen-config"


class InvalidRequest(ValueError):
    """An Autodiscover request that is not XML of the Outlook request schema."""


@dataclass(frozen=True)
class Servers:
    hostname: str
    imaps: int
    imap: int
    pop3s: int
    pop3: int
    submissions: int
    submission: int

    @classmethod
    def from_settings(cls) -> Servers:
        return cls(
            hostname=settings.MAILHOST_HOSTNAME,
            imaps=settings.MAILHOST_IMAPS_PORT,
            imap=settings.MAILHOST_IMAP_PORT,
            pop3s=settings.MAILHOST_POP3S_PORT,
            pop3=settings.MAILHOST_POP3_PORT,
            submissions=settings.MAILHOST_SUBMISSIONS_PORT,
            submission=settings.MAILHOST_SUBMISSION_PORT,
        )


def _document(root: ET.Element) -> bytes:
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


def _child(parent: ET.Element, tag: str, text: object = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = str(text)
    return element


def thunderbird_config(domain: str, servers: Servers) -> bytes:
    """clientConfig 1.1 for a hosted domain. Thunderbird offers the first server of each kind
    it can reach, so implicit TLS (RFC 8314) comes before STARTTLS, and IMAP before POP3."""
    root = ET.Element("clientConfig", version=AUTOCONFIG_VERSION)
    provider = _child(root, "emailProvider", id=domain)
    _child(provider, "domain", domain)
    _child(provider, "displayName", domain)
    _child(provider, "displayShortName", domain)
    incoming = (
        ("imap", servers.imaps, "SSL"),
        ("imap", servers.imap, "STARTTLS"),
        ("pop3", servers.pop3s, "SSL"),
        ("pop3", servers.pop3, "STARTTLS"),
    )
    outgoing = (("smtp", servers.submissions, "SSL"), ("smtp", servers.submission, "STARTTLS"))
    for tag, plan in (("incomingServer", incoming), ("outgoingServer", outgoing)):
        for kind, port, socket_type in plan:
            server = _child(provider, tag, type=kind)
            _child(server, "hostname", servers.hostname)
            _child(server, "port", port)
            _child(server, "socketType", socket_type)
            _child(server, "username", "%EMAILADDRESS%")
            _child(server, "authentication", "password-cleartext")
    return _document(root)


def autodiscover_request_address(body: bytes) -> str:
    """The EMailAddress of an Outlook Autodiscover request (InvalidRequest otherwise).
    A DTD is refused outright: no entity of the client's is ever expanded."""
    if len(body) > AUTODISCOVER_MAX_REQUEST or b"<!" in body.replace(b"<![CDATA[", b""):
        raise InvalidRequest("request too large or carries a DTD")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise InvalidRequest(str(exc)) from None
    address = root.findtext(
        f"{{{AUTODISCOVER_REQUEST_NS}}}Request/{{{AUTODISCOVER_REQUEST_NS}}}EMailAddress"
    )
    if not address or not address.strip():
        raise InvalidRequest("no Request/EMailAddress")
    return address.strip()


def autodiscover_response(address: str, servers: Servers) -> bytes:
    """The Outlook response (2006a): IMAP, SMTP and POP3 over implicit TLS."""
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE_NS)
    response = _child(root, "Response", xmlns=AUTODISCOVER_OUTLOOK_NS)
    account = _child(response, "Account")
    _child(account, "AccountType", "email")
    _child(account, "Action", "settings")
    for kind, port in (
        ("IMAP", servers.imaps),
        ("SMTP", servers.submissions),
        ("POP3", servers.pop3s),
    ):
        protocol = _child(account, "Protocol")
        _child(protocol, "Type", kind)
        _child(protocol, "Server", servers.hostname)
        _child(protocol, "Port", port)
        _child(protocol, "DomainRequired", "off")
        _child(protocol, "LoginName", address)
        _child(protocol, "SPA", "off")
        _child(protocol, "SSL", "on")
        _child(protocol, "AuthRequired", "on")
    return _document(root)


def autodiscover_error(code: int, message: str) -> bytes:
    """MS-OXDSCLI 2.2.4.2.1.1: an Error element (600 Invalid Request, 500 not found)."""
    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE_NS)
    response = _child(root, "Response")
    error = _child(response, "Error")
    _child(error, "ErrorCode", code)
    _child(error, "Message", message)
    return _document(root)


def mobileconfig(address: str, *, display_name: str, servers: Servers) -> bytes:
    """An Apple configuration profile with one com.apple.mail.managed payload (IMAP over
    implicit TLS, submission over implicit TLS). The identifiers stay the same for the same
    account, so installing a newer profile replaces the older; the UUIDs are new each time."""
    reverse_host = ".".join(reversed(servers.hostname.split(".")))
    account_id = uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{address}")
    identifier = f"{reverse_host}.mailhost.{account_id}"
    account = {
        "PayloadType": "com.apple.mail.managed",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.mail",
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "PayloadDisplayName": address,
        "EmailAccountDescription": address,
        "EmailAccountName": display_name or address,
        "EmailAccountType": "EmailTypeIMAP",
        "EmailAddress": address,
        "IncomingMailServerAuthentication": "EmailAuthPassword",
        "IncomingMailServerHostName": servers.hostname,
        "IncomingMailServerPortNumber": servers.imaps,
        "IncomingMailServerUseSSL": True,
        "IncomingMailServerUsername": address,
        "OutgoingMailServerAuthentication": "EmailAuthPassword",
        "OutgoingMailServerHostName": servers.hostname,
        "OutgoingMailServerPortNumber": servers.submissions,
        "OutgoingMailServerUseSSL": True,
        "OutgoingMailServerUsername": address,
        "OutgoingPasswordSameAsIncomingPassword": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "PayloadDisplayName": f"Mail: {address}",
        "PayloadDescription": f"The mail account {address} on {servers.hostname}",
        "PayloadOrganization": servers.hostname,
        "PayloadRemovalDisallowed": False,
        "PayloadContent": [account],
    }
    return plistlib.dumps(profile, fmt=plistlib.FMT_XML)
