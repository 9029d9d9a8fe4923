"""Client autoconfig (issue 18): Thunderbird's config-v1.1.xml, Outlook's Autodiscover (POX
and JSON v2), the Apple profile from webmail. Each document is parsed the way its client
reads it, field by field."""

from __future__ import annotations

import plistlib
import uuid
import xml.etree.ElementTree as ET

import pytest
from django.test import Client

from mailhost import clientconfig

HOST = "mail.example.net"
# Ports unlike the defaults: the documents must carry the settings, not constants.
PORTS = {"IMAPS": 10993, "IMAP": 10143, "POP3S": 10995, "POP3": 10110}
PORTS.update({"SUBMISSIONS": 10465, "SUBMISSION": 10587})

REQUEST_NS = clientconfig.AUTODISCOVER_REQUEST_NS
RESPONSE_NS = clientconfig.AUTODISCOVER_RESPONSE_NS
OUTLOOK_NS = clientconfig.AUTODISCOVER_OUTLOOK_NS


@pytest.fixture
def servers(settings):
    settings.MAILHOST_HOSTNAME = HOST
    for name, port in PORTS.items():
        setattr(settings, f"MAILHOST_{name}_PORT", port)


@pytest.fixture
def hosted(make_mailbox, servers):
    return make_mailbox("alice@example.org", password="secret", display_name="Alice Liddell")


# --- Thunderbird -----------------------------------------------------------------------------

# What Thunderbird's readFromXML accepts (comm-central mail/components/accountcreation).
SOCKET_TYPES = {"plain", "SSL", "STARTTLS"}
AUTHENTICATIONS = {"password-cleartext", "password-encrypted", "OAuth2", "client-IP-address"}


def thunderbird_read(document: bytes) -> dict:
    """The account config as Thunderbird takes it from the XML: the provider, and each
    server's type, hostname, port, socketType, username and authentication."""
    root = ET.fromstring(document)
    assert root.tag == "clientConfig" and root.get("version") == "1.1"
    provider = root.find("emailProvider")
    assert provider is not None

    def servers(tag: str) -> list[tuple]:
        found = []
        for server in provider.findall(tag):
            socket_type = server.findtext("socketType")
            authentication = server.findtext("authentication")
            assert socket_type in SOCKET_TYPES, socket_type
            assert authentication in AUTHENTICATIONS, authentication
            found.append(
                (
                    server.get("type"),
                    server.findtext("hostname"),
                    int(server.findtext("port")),
                    socket_type,
                    server.findtext("username"),
                    authentication,
                )
            )
        return found

    return {
        "id": provider.get("id"),
        "domains": [d.text for d in provider.findall("domain")],
        "incoming": servers("incomingServer"),
        "outgoing": servers("outgoingServer"),
    }


EXPECTED_INCOMING = [
    ("imap", HOST, 10993, "SSL", "%EMAILADDRESS%", "password-cleartext"),
    ("imap", HOST, 10143, "STARTTLS", "%EMAILADDRESS%", "password-cleartext"),
    ("pop3", HOST, 10995, "SSL", "%EMAILADDRESS%", "password-cleartext"),
    ("pop3", HOST, 10110, "STARTTLS", "%EMAILADDRESS%", "password-cleartext"),
]
EXPECTED_OUTGOING = [
    ("smtp", HOST, 10465, "SSL", "%EMAILADDRESS%", "password-cleartext"),
    ("smtp", HOST, 10587, "STARTTLS", "%EMAILADDRESS%", "password-cleartext"),
]


@pytest.mark.parametrize(
    "path", ["/mail/config-v1.1.xml", "/.well-known/autoconfig/mail/config-v1.1.xml"]
)
def test_thunderbird_config_by_address(client, hosted, path):
    response = client.get(path, {"emailaddress": "alice@example.org"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    config = thunderbird_read(response.content)
    assert config["id"] == "example.org"
    assert config["domains"] == ["example.org"]
    assert config["incoming"] == EXPECTED_INCOMING
    assert config["outgoing"] == EXPECTED_OUTGOING


@pytest.mark.parametrize("host", ["autoconfig.example.org", "example.org", "example.org:8000"])
def test_thunderbird_config_by_host(client, hosted, host):
    response = client.get("/mail/config-v1.1.xml", HTTP_HOST=host)
    assert response.status_code == 200
    config = thunderbird_read(response.content)
    assert config["domains"] == ["example.org"]
    assert config["incoming"] == EXPECTED_INCOMING


def test_thunderbird_config_answers_head(client, hosted):
    response = client.head("/mail/config-v1.1.xml", {"emailaddress": "alice@example.org"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/xml")
    assert client.post("/mail/config-v1.1.xml").status_code == 405


def test_thunderbird_config_does_not_tell_which_addresses_exist(client, hosted):
    known = client.get("/mail/config-v1.1.xml", {"emailaddress": "alice@example.org"})
    unknown = client.get("/mail/config-v1.1.xml", {"emailaddress": "nobody@example.org"})
    assert unknown.status_code == 200
    assert unknown.content == known.content


@pytest.mark.parametrize(
    "query, host",
    [
        ({"emailaddress": "alice@elsewhere.test"}, "autoconfig.example.org"),
        ({}, "autoconfig.elsewhere.test"),
        ({"emailaddress": "not-an-address"}, "autoconfig.example.org"),
    ],
)
def test_thunderbird_config_only_for_hosted_domains(client, hosted, query, host):
    response = client.get("/mail/config-v1.1.xml", query, HTTP_HOST=host)
    assert response.status_code == 404


def test_thunderbird_config_not_for_a_disabled_domain(client, hosted):
    from mailboxes.models import Domain

    Domain.objects.filter(name="example.org").update(active=False)
    response = client.get("/mail/config-v1.1.xml", {"emailaddress": "alice@example.org"})
    assert response.status_code == 404


# --- Outlook Autodiscover ----------------------------------------------------------------------


def autodiscover_request(address: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<Autodiscover xmlns="{REQUEST_NS}"><Request>'
        f"<EMailAddress>{address}</EMailAddress>"
        f"<AcceptableResponseSchema>{OUTLOOK_NS}</AcceptableResponseSchema>"
        "</Request></Autodiscover>"
    ).encode()


def outlook_protocols(document: bytes) -> dict[str, dict[str, str]]:
    root = ET.fromstring(document)
    assert root.tag == f"{{{RESPONSE_NS}}}Autodiscover"
    account = root.find(f"{{{OUTLOOK_NS}}}Response/{{{OUTLOOK_NS}}}Account")
    assert account is not None
    assert account.findtext(f"{{{OUTLOOK_NS}}}AccountType") == "email"
    assert account.findtext(f"{{{OUTLOOK_NS}}}Action") == "settings"
    protocols = {}
    for protocol in account.findall(f"{{{OUTLOOK_NS}}}Protocol"):
        fields = {child.tag.split("}")[1]: child.text for child in protocol}
        protocols[fields.pop("Type")] = fields
    return protocols


@pytest.mark.parametrize(
    "path", ["/autodiscover/autodiscover.xml", "/Autodiscover/Autodiscover.xml"]
)
def test_autodiscover_xml(hosted, path):
    client = Client(enforce_csrf_checks=True)  # Outlook has no CSRF token
    response = client.post(path, autodiscover_request("alice@example.org"), content_type="text/xml")
    assert response.status_code == 200
    protocols = outlook_protocols(response.content)
    assert set(protocols) == {"IMAP", "SMTP", "POP3"}
    for kind, port in (("IMAP", 10993), ("SMTP", 10465), ("POP3", 10995)):
        assert protocols[kind]["Server"] == HOST
        assert int(protocols[kind]["Port"]) == port
        assert protocols[kind]["SSL"] == "on"
        assert protocols[kind]["LoginName"] == "alice@example.org"
        assert protocols[kind]["AuthRequired"] == "on"


def test_autodiscover_xml_does_not_tell_which_addresses_exist(client, hosted):
    response = client.post(
        "/autodiscover/autodiscover.xml",
        autodiscover_request("nobody@example.org"),
        content_type="text/xml",
    )
    assert response.status_code == 200
    assert outlook_protocols(response.content)["IMAP"]["LoginName"] == "nobody@example.org"


def autodiscover_error_code(document: bytes) -> str:
    root = ET.fromstring(document)
    return root.findtext(
        f"{{{RESPONSE_NS}}}Response/{{{RESPONSE_NS}}}Error/{{{RESPONSE_NS}}}ErrorCode"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not xml",
        b'<Autodiscover xmlns="urn:other"><Request><EMailAddress>a@example.org</EMailAddress>'
        b"</Request></Autodiscover>",
        # An entity expansion bomb: refused before any parsing.
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        + autodiscover_request("&b;@example.org").split(b"?>", 1)[1],
    ],
)
def test_autodiscover_xml_invalid_request(client, hosted, body):
    response = client.post("/autodiscover/autodiscover.xml", body, content_type="text/xml")
    assert response.status_code == 400
    assert autodiscover_error_code(response.content) == "600"


def test_autodiscover_xml_only_for_hosted_domains(client, hosted):
    response = client.post(
        "/autodiscover/autodiscover.xml",
        autodiscover_request("alice@elsewhere.test"),
        content_type="text/xml",
    )
    assert response.status_code == 404
    assert autodiscover_error_code(response.content) == "500"
    assert client.get("/autodiscover/autodiscover.xml").status_code == 405


@pytest.mark.parametrize(
    "path",
    [
        "/autodiscover/autodiscover.json?Email=alice@example.org&Protocol=AutodiscoverV1",
        "/autodiscover/autodiscover.json/v1.0/alice@example.org?Protocol=AutodiscoverV1",
        "/autodiscover/autodiscover.json/v1.0/nobody@example.org?Protocol=autodiscoverv1",
    ],
)
def test_autodiscover_json(client, hosted, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.json() == {
        "Protocol": "AutodiscoverV1",
        "Url": f"https://{HOST}/autodiscover/autodiscover.xml",
    }


def test_autodiscover_json_refuses_other_protocols_and_domains(client, hosted):
    response = client.get(
        "/autodiscover/autodiscover.json/v1.0/alice@example.org?Protocol=ActiveSync"
    )
    assert response.status_code == 400
    assert response.json()["ErrorCode"] == "InvalidProtocol"
    response = client.get(
        "/autodiscover/autodiscover.json?Email=alice@elsewhere.test&Protocol=AutodiscoverV1"
    )
    assert response.status_code == 404


# --- Apple profile -----------------------------------------------------------------------------


def test_mail_apps_page_links_the_apple_profile(client, hosted):
    client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    page = client.get("/settings/mail-apps/")
    assert page.status_code == 200
    assert b'href="/settings/mail-apps/apple.mobileconfig"' in page.content
    assert HOST.encode() in page.content
    assert (
        b'href="/settings/mail-apps/"' in client.get("/", follow=True).content
    )  # the sidebar's link


def test_apple_profile(client, hosted):
    client.post("/login/", {"address": "alice@example.org", "password": "secret"})
    response = client.get("/settings/mail-apps/apple.mobileconfig")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-apple-aspen-config"
    assert "attachment" in response["Content-Disposition"]
    profile = plistlib.loads(response.content)
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadVersion"] == 1
    [account] = profile["PayloadContent"]
    assert account["PayloadType"] == "com.apple.mail.managed"
    assert account["EmailAccountType"] == "EmailTypeIMAP"
    assert account["EmailAddress"] == "alice@example.org"
    assert account["EmailAccountName"] == "Alice Liddell"
    assert account["IncomingMailServerHostName"] == HOST
    assert account["IncomingMailServerPortNumber"] == 10993
    assert account["IncomingMailServerUseSSL"] is True
    assert account["IncomingMailServerUsername"] == "alice@example.org"
    assert account["OutgoingMailServerHostName"] == HOST
    assert account["OutgoingMailServerPortNumber"] == 10465
    assert account["OutgoingMailServerUseSSL"] is True
    assert account["OutgoingMailServerUsername"] == "alice@example.org"
    uuids = {uuid.UUID(profile["PayloadUUID"]), uuid.UUID(account["PayloadUUID"])}
    assert len(uuids) == 2
    # A second download replaces the first on the device: same identifiers, new UUIDs.
    again = plistlib.loads(client.get("/settings/mail-apps/apple.mobileconfig").content)
    assert again["PayloadIdentifier"] == profile["PayloadIdentifier"]
    assert uuid.UUID(again["PayloadUUID"]) not in uuids


def test_apple_profile_needs_a_signed_in_reader(client, hosted):
    response = client.get("/settings/mail-apps/apple.mobileconfig")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
