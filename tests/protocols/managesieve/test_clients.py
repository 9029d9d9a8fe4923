"""Clients nobody here wrote: sievelib (PyPI) over STARTTLS with the certificate verified, and
the protocol flow of Thunderbird's sieve add-on (thsmi/sieve, libManageSieve) as it documents
its requests: capabilities read at connect and again after STARTTLS, an explicit CAPABILITY,
AUTHENTICATE "PLAIN" (here with a literal), SASL LOGIN answered with literals, PUTSCRIPT and
CHECKSCRIPT bodies as `{n+}` literals."""

from __future__ import annotations

import base64
import ssl

import pytest
from sievelib import managesieve

from mailboxes import selectors
from protocols.managesieve import responses as R
from tests.protocols.managesieve.conftest import (
    ADDRESS,
    INVALID,
    PASSWORD,
    VALID,
    Client,
    capabilities,
    plain,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def trusted_certificate(managesieve, tmp_path, monkeypatch):
    """Make the certificate the listener presents the one CA sievelib trusts, so that its
    default context verifies the chain and the name (mx.test.example) for real."""
    probe = Client(managesieve)
    probe.response()
    probe.command("STARTTLS")
    probe.starttls()
    pem = ssl.DER_cert_to_PEM_cert(probe.sock.getpeercert(binary_form=True))
    probe.close()
    cafile = tmp_path / "ca.pem"
    cafile.write_text(pem)
    original = ssl.create_default_context
    monkeypatch.setattr(ssl, "create_default_context", lambda *a, **k: original(cafile=str(cafile)))
    return cafile


def sievelib_client(port: int) -> managesieve.Client:
    return managesieve.Client("127.0.0.1", port, srvhostname="mx.test.example")


def test_sievelib_manages_scripts_over_starttls(managesieve, trusted_certificate, mailbox):
    from protocols.managesieve.server import sieve_extensions

    client = sievelib_client(managesieve)
    assert client.connect(ADDRESS, PASSWORD, starttls=True, authmech="PLAIN")
    assert client.get_implementation() == "Mailhost"
    assert client.get_sieve_capabilities() == sieve_extensions()
    assert client.has_tls_support() is False  # capabilities as re-issued inside TLS
    assert client.havespace("lists", len(VALID))
    assert client.checkscript(VALID)
    assert not client.checkscript(INVALID)
    assert b"line" in client.errmsg
    assert not client.putscript("bad", INVALID)
    assert client.putscript("lists", VALID)
    assert client.putscript("other", "keep;\n")
    assert client.setactive("lists")
    assert client.listscripts() == ("lists", ["other"])
    assert client.getscript("lists") == "\n".join(VALID.splitlines())
    assert not client.deletescript("lists")
    assert client.errcode == b"ACTIVE"
    assert client.renamescript("other", "renamed")
    assert not client.renamescript("missing", "x")
    assert client.errcode == b"NONEXISTENT"
    assert client.setactive("")
    assert client.deletescript("lists")
    assert client.listscripts() == (None, ["renamed"])
    client.logout()
    [script] = selectors.sievescripts_of(mailbox)
    assert (script.name, script.text, script.active) == ("renamed", "keep;\r\n", False)


def test_sievelib_login_mechanism_and_a_wrong_password(managesieve, trusted_certificate, mailbox):
    client = sievelib_client(managesieve)
    assert client.connect(ADDRESS, PASSWORD, starttls=True, authmech="LOGIN")
    assert client.listscripts() == (None, [])
    client.logout()
    refused = sievelib_client(managesieve)
    assert not refused.connect(ADDRESS, "wrong", starttls=True, authmech="PLAIN")


def literal(data: str | bytes) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return b"{%d+}\r\n" % len(data) + data


def test_thunderbird_sieve_protocol_flow(client_for, mailbox):
    # SieveInitRequest: the capabilities the server sends on connect.
    client = client_for()
    # SieveStartTLSRequest, then the init response again inside TLS, then an explicit
    # SieveCapabilitiesRequest (the add-on asks anyway, for servers that do not re-issue).
    client.send("STARTTLS")
    assert client.response() == R.OK_STARTTLS
    client.starttls()
    client.send("CAPABILITY")
    assert client.response() == capabilities(secure=True, login=True) + R.OK_TLS_STARTED
    assert client.response() == capabilities(secure=True, login=True) + R.OK_CAPABILITY
    # SieveSaslPlainRequest, with the credentials as a literal.
    assert client.command(b'AUTHENTICATE "PLAIN" ' + literal(plain())) == R.OK_LOGGED_IN
    assert client.command("LISTSCRIPTS") == R.OK_LISTSCRIPTS
    # SieveCheckScriptRequest / SievePutScriptRequest: bodies with CRLF line ends.
    assert client.command(b"CHECKSCRIPT " + literal(VALID)) == R.OK_CHECKSCRIPT
    reply = client.command(b"CHECKSCRIPT " + literal(INVALID))
    assert reply.startswith(b"NO ")
    assert client.command(b'PUTSCRIPT "thunderbird" ' + literal(VALID)) == R.OK_PUTSCRIPT
    assert client.command('SETACTIVE "thunderbird"') == R.OK_SETACTIVE
    assert client.command('GETSCRIPT "thunderbird"') == (
        b"{%d}\r\n" % len(VALID) + VALID.encode() + b"\r\n" + R.OK_GETSCRIPT
    )
    assert client.command("NOOP") == R.OK_NOOP  # the add-on's keep-alive
    assert client.command('RENAMESCRIPT "thunderbird" "tb"') == R.OK_RENAMESCRIPT
    assert client.command("LISTSCRIPTS") == b'"tb" ACTIVE\r\n' + R.OK_LISTSCRIPTS
    assert client.command('SETACTIVE ""') == R.OK_SETACTIVE
    assert client.command('DELETESCRIPT "tb"') == R.OK_DELETESCRIPT
    assert client.command("LOGOUT") == R.OK_LOGOUT
    assert client.closed()


def test_thunderbird_sasl_login_with_literal_responses(client_for, mailbox):
    # SieveSaslLoginRequest as documented: the client answers each challenge with {n+}.
    client = client_for()
    client.command("STARTTLS")
    client.starttls()
    client.response()
    client.send('AUTHENTICATE "LOGIN"')
    assert client.line() == b'"VXNlcm5hbWU6"\r\n'
    client.send(literal(base64.b64encode(ADDRESS.encode())))
    assert client.line() == b'"UGFzc3dvcmQ6"\r\n'
    client.send(literal(base64.b64encode(PASSWORD.encode())))
    assert client.response() == R.OK_LOGGED_IN
    assert selectors.sievescripts_of(mailbox) == []
