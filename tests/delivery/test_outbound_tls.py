"""Outbound TLS policies (issue 20): MTA-STS (RFC 8461), DANE (RFC 7672), REQUIRETLS and
TLS-Required (RFC 8689), end to end: spool -> worker -> the local DNS server (the AD bit set
for the names a test calls signed) -> SMTP peers on 127.0.0.x speaking STARTTLS with
certificates from test CAs, and the MTA-STS policy served over HTTPS by a local server."""

from __future__ import annotations

import hashlib
import http.server
import ssl
import threading

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from delivery.models import MtaStsPolicy, OutboundRecipient, RecipientStatus
from delivery.services import SpoolRecipient, spool_create
from mailboxes.services import blob_store
from tests.delivery.conftest import PeerHandler, run_queue
from tests.support.tlsca import make_ca

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("delivery_env")]

SENDER = "alice@example.org"
RAW = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@secure.test\r\n"
    b"Subject: secret plans\r\n"
    b"Message-ID: <tls-1@example.org>\r\n"
    b"\r\n"
    b"For your eyes only.\r\n"
)


# --- the world: CAs, peers with certificates, a policy server ------------------------------


class World:
    def __init__(self, tmp_path, zone, peers, settings) -> None:
        self.tmp_path, self.zone, self.peers, self.settings = tmp_path, zone, peers, settings
        self.cas = []
        self.https = None

    def ca(self, name: str, *names: str):
        ca = make_ca(self.tmp_path / name, names=names)
        self.cas.append(ca)
        bundle = self.tmp_path / "trusted.pem"
        bundle.write_bytes(b"".join(c.ca_path.read_bytes() for c in self.cas))
        self.settings.MAILHOST_OUTBOUND_CA_FILE = str(bundle)
        return ca

    def peer(self, address: str, ca, *, chain: bool = False, factory=None) -> PeerHandler:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert = ca.cert_path
        if chain:  # leaf then the CA, as a server sends its chain (DANE-TA needs the CA in it)
            cert = self.tmp_path / f"chain-{address}.pem"
            cert.write_bytes(ca.cert_path.read_bytes() + ca.ca_path.read_bytes())
        context.load_cert_chain(str(cert), str(ca.key_path))
        if factory is None:
            return self.peers.start(address, tls_context=context)
        handler = PeerHandler()
        controller = factory(handler, address, self.peers.port, context)
        controller.start()
        self.peers.controllers[address] = controller
        return handler

    def policy(self, text: str, policy_id: str = "20261203") -> None:
        """Publish an MTA-STS policy for secure.test: the TXT record and the HTTPS server."""
        self.zone.records["_mta-sts.secure.test"]["TXT"] = [f'"v=STSv1; id={policy_id};"']
        self.zone.add("mta-sts.secure.test", "A", "127.0.0.9")
        if self.https is None:
            ca = self.ca("ca-sts", "mta-sts.secure.test")
            self.https = PolicyServer(ca, "127.0.0.9")
            self.settings.MAILHOST_MTA_STS_PORT = self.https.port
        self.https.body = text.encode()

    def close(self) -> None:
        if self.https is not None:
            self.https.close()


class PolicyServer:
    """https://mta-sts.secure.test/.well-known/mta-sts.txt on 127.0.0.9."""

    def __init__(self, ca, address: str) -> None:
        self.body = b""
        self.fetches = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                outer.fetches += 1
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer((address, 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(ca.cert_path), str(ca.key_path))
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(tmp_path, dns_server, peers, settings, make_mailbox):
    make_mailbox(SENDER)
    settings.MAILHOST_DANE = True
    settings.MAILHOST_MTA_STS = True
    dns_server.add("secure.test", "MX", "10 mx1.secure.test.")
    dns_server.add("mx1.secure.test", "A", "127.0.0.2")
    w = World(tmp_path, dns_server, peers, settings)
    yield w
    w.close()


def spool(*, require_tls: bool = False, raw: bytes = RAW):
    return spool_create(
        blob=blob_store(raw),
        mail_from=SENDER,
        recipients=[SpoolRecipient("bob@secure.test")],
        require_tls=require_tls,
    )


def outcome(message) -> OutboundRecipient:
    run_queue()
    return OutboundRecipient.objects.get(message=message)


ENFORCE = (
    "version: STSv1\nmode: enforce\nmx: mx1.secure.test\nmx: *.backup.secure.test\nmax_age: 86400\n"
)


# --- MTA-STS --------------------------------------------------------------------------------


def test_mta_sts_enforce_delivers_to_an_mx_with_a_valid_certificate(world):
    peer = world.peer("127.0.0.2", world.ca("ca-mx", "mx1.secure.test"))
    world.policy(ENFORCE)
    row = outcome(spool())
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    assert row.protection == "mta-sts"
    assert len(peer.received) == 1
    cached = MtaStsPolicy.objects.get(domain="secure.test")
    assert (cached.mode, cached.mx.split(), cached.max_age) == (
        "enforce",
        ["mx1.secure.test", "*.backup.secure.test"],
        86400,
    )


def test_mta_sts_enforce_defers_a_peer_with_the_wrong_certificate(world):
    peer = world.peer("127.0.0.2", world.ca("ca-mx", "someone-else.test"))
    world.policy(ENFORCE)
    row = outcome(spool())
    assert row.status == RecipientStatus.DEFERRED
    assert row.last_reply.startswith("451 4.7.5 TLS handshake failed"), row.last_reply
    assert peer.received == []


def test_mta_sts_enforce_uses_only_the_mx_hosts_it_names(world):
    # The first MX is not in the policy: never contacted, the mail goes to the second.
    world.zone.records["secure.test"]["MX"] = ["10 rogue.secure.test.", "20 mx1.secure.test."]
    world.zone.add("rogue.secure.test", "A", "127.0.0.4")
    rogue = world.peer("127.0.0.4", world.ca("ca-rogue", "rogue.secure.test"))
    peer = world.peer("127.0.0.2", world.ca("ca-mx", "mx1.secure.test"))
    world.policy(ENFORCE)
    row = outcome(spool())
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    assert rogue.received == [] and len(peer.received) == 1


def test_mta_sts_testing_mode_delivers_with_unverified_tls(world):
    peer = world.peer("127.0.0.2", world.ca("ca-mx", "someone-else.test"))
    world.policy(ENFORCE.replace("enforce", "testing"))
    row = outcome(spool())
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    assert row.protection == "tls"
    assert len(peer.received) == 1


def test_a_cached_policy_outlives_a_failed_fetch_and_a_new_id_is_fetched(world):
    world.peer("127.0.0.2", world.ca("ca-mx", "mx1.secure.test"))
    world.policy(ENFORCE)
    assert outcome(spool()).status == RecipientStatus.DELIVERED
    assert world.https.fetches == 1
    assert outcome(spool()).status == RecipientStatus.DELIVERED
    assert world.https.fetches == 1  # same id in the TXT record: the cached policy
    # A new id, and the policy server now down: the cached (enforce) policy still applies.
    world.zone.records["_mta-sts.secure.test"]["TXT"] = ['"v=STSv1; id=new1;"']
    world.https.close()
    world.peers.controllers.pop("127.0.0.2").stop()
    impostor = world.peer("127.0.0.2", world.ca("ca-impostor", "someone-else.test"))
    row = outcome(spool())
    assert row.status == RecipientStatus.DEFERRED, row.last_reply
    assert impostor.received == []


def test_tls_required_no_ignores_the_policy(world):
    peer = world.peer("127.0.0.2", world.ca("ca-mx", "someone-else.test"))
    world.policy(ENFORCE)
    raw = RAW.replace(b"Subject:", b"TLS-Required: No\r\nSubject:")
    row = outcome(spool(raw=raw))
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    assert row.protection == "tls"
    assert len(peer.received) == 1


# --- DANE -----------------------------------------------------------------------------------


def tlsa(usage: int, selector: int, mtype: int, der: bytes) -> str:
    data = der
    if selector == 1:
        cert = x509.load_der_x509_certificate(der)
        data = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    digest = {
        0: lambda d: d,
        1: lambda d: hashlib.sha256(d).digest(),
        2: lambda d: hashlib.sha512(d).digest(),
    }
    return f"{usage} {selector} {mtype} {digest[mtype](data).hex()}"


def der_of(path) -> bytes:
    return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )


def publish_tlsa(world, record: str, *, signed: bool = True) -> None:
    name = f"_{world.peers.port}._tcp.mx1.secure.test"
    world.zone.add(name, "TLSA", record)
    if signed:
        world.zone.signed.update({"secure.test", name})


@pytest.mark.parametrize("selector,mtype", [(1, 1), (0, 1), (1, 2), (0, 0)])
def test_dane_ee_peer_verified_whatever_its_name(world, selector, mtype):
    ca = world.ca("ca-mx", "not-the-mx-name.test")  # DANE-EE ignores names and issuers
    peer = world.peer("127.0.0.2", ca)
    publish_tlsa(world, tlsa(3, selector, mtype, der_of(ca.cert_path)))
    row = outcome(spool())
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    assert row.protection == "dane"
    assert len(peer.received) == 1


def test_dane_wrong_tlsa_defers_and_never_falls_back(world):
    ca = world.ca("ca-mx", "mx1.secure.test")
    other = world.ca("ca-other", "mx1.secure.test")
    peer = world.peer("127.0.0.2", ca)
    publish_tlsa(world, tlsa(3, 1, 1, der_of(other.cert_path)))
    row = outcome(spool())
    assert row.status == RecipientStatus.DEFERRED
    assert row.last_reply == ("451 4.7.5 DANE: no TLSA record matches the certificate chain"), (
        row.last_reply
    )
    assert peer.received == []


def test_dane_takes_precedence_over_mta_sts(world):
    # The certificate does not name the MX (MTA-STS would refuse), the TLSA record matches it.
    ca = world.ca("ca-mx", "not-the-mx-name.test")
    peer = world.peer("127.0.0.2", ca)
    world.policy(ENFORCE)
    publish_tlsa(world, tlsa(3, 1, 1, der_of(ca.cert_path)))
    row = outcome(spool())
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    assert row.protection == "dane" and len(peer.received) == 1


def test_unsigned_tlsa_records_are_not_trusted(world):
    ca = world.ca("ca-mx", "mx1.secure.test")
    other = world.ca("ca-other", "mx1.secure.test")
    peer = world.peer("127.0.0.2", ca)
    publish_tlsa(world, tlsa(3, 1, 1, der_of(other.cert_path)), signed=False)
    row = outcome(spool())
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    assert row.protection == "tls" and len(peer.received) == 1


def test_dane_ta_trust_anchor_in_the_chain_and_the_mx_name(world):
    ca = world.ca("ca-mx", "mx1.secure.test")
    peer = world.peer("127.0.0.2", ca, chain=True)
    publish_tlsa(world, tlsa(2, 0, 1, der_of(ca.ca_path)))
    row = outcome(spool())
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    assert row.protection == "dane" and len(peer.received) == 1


def test_dane_ta_refuses_a_certificate_for_another_name(world):
    ca = world.ca("ca-mx", "someone-else.test")
    peer = world.peer("127.0.0.2", ca, chain=True)
    publish_tlsa(world, tlsa(2, 0, 1, der_of(ca.ca_path)))
    row = outcome(spool())
    assert row.status == RecipientStatus.DEFERRED, row.last_reply
    assert peer.received == []


# --- REQUIRETLS -----------------------------------------------------------------------------


class RequireTlsSMTP(SMTP):
    """An aiosmtpd peer that offers REQUIRETLS (RFC 8689) after STARTTLS and takes the
    parameter: a stand-in for a remote server that supports it."""

    async def smtp_MAIL(self, arg):
        if arg and arg.upper().endswith(" REQUIRETLS"):
            self.envelope.mail_options.append("REQUIRETLS")
            arg = arg[: -len(" REQUIRETLS")]
        await super().smtp_MAIL(arg)

    async def smtp_EHLO(self, hostname):
        if not self._tls_protocol:
            return await super().smtp_EHLO(hostname)
        real_push = self.push

        async def push(status):
            if status.startswith("250 "):  # REQUIRETLS before the last line
                await real_push("250-REQUIRETLS")
            await real_push(status)

        self.push = push
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self.push = real_push


class RequireTlsController(Controller):
    def __init__(self, handler, address, port, context):
        super().__init__(handler, hostname=address, port=port, tls_context=context)

    def factory(self):
        return RequireTlsSMTP(self.handler, **self.SMTP_kwargs)


def requiretls_peer(handler, address, port, context):
    return RequireTlsController(handler, address, port, context)


def test_requiretls_goes_to_a_verified_peer_that_offers_it(world):
    peer = world.peer("127.0.0.2", world.ca("ca-mx", "mx1.secure.test"), factory=requiretls_peer)
    world.policy(ENFORCE.replace("enforce", "testing"))  # RFC 8689 4.2.1: testing counts too
    row = outcome(spool(require_tls=True))
    assert row.status == RecipientStatus.DELIVERED, row.last_reply
    assert row.protection == "mta-sts"
    [got] = peer.received
    assert "REQUIRETLS" in got.mail_options


def test_requiretls_bounces_when_the_peer_does_not_offer_it(world):
    peer = world.peer("127.0.0.2", world.ca("ca-mx", "mx1.secure.test"))
    world.policy(ENFORCE)
    message = spool(require_tls=True)
    row = outcome(message)
    assert row.status == RecipientStatus.FAILED, row.last_reply
    assert row.last_reply.startswith("550 5.7.30 REQUIRETLS"), row.last_reply
    assert peer.received == []


def test_requiretls_bounces_without_dane_or_mta_sts(world):
    peer = world.peer("127.0.0.2", world.ca("ca-mx", "mx1.secure.test"), factory=requiretls_peer)
    row = outcome(spool(require_tls=True))
    assert row.status == RecipientStatus.FAILED, row.last_reply
    assert "5.7.30" in row.last_reply and "no verified TLS" in row.last_reply
    assert peer.received == []


def test_a_domain_without_a_policy_is_not_asked_again_for_each_message(world):
    peer = world.peer("127.0.0.2", world.ca("ca-mx", "mx1.secure.test"))
    for _ in range(3):
        assert outcome(spool()).status == RecipientStatus.DELIVERED
    asked = [q for q in world.zone.queries if q[0] == "_mta-sts.secure.test"]
    assert len(asked) == 1  # remembered for mtasts.MEMO_SECONDS
    assert len(peer.received) == 3


def test_a_tls_context_is_built_once_not_for_each_session(world, monkeypatch):
    """Building a client context (the system's CA bundle loaded) cost 17.7 ms of CPU; the
    sessions of each kind (opportunistic, MTA-STS) build one and reuse it, and a CA file
    rewritten in place is read again."""
    import ssl as ssl_module

    from delivery import client

    built = []
    real = ssl_module.create_default_context

    def counting(purpose=ssl_module.Purpose.SERVER_AUTH, **kwargs):  # noqa: ANN001, ANN003
        if purpose == ssl_module.Purpose.SERVER_AUTH:  # a client's (the peers' are not counted)
            built.append(kwargs.get("cafile"))
        return real(purpose, **kwargs)

    monkeypatch.setattr(ssl_module, "create_default_context", counting)
    world.zone.add("plain.test", "MX", "10 mx1.secure.test.")  # no MTA-STS policy
    peer = world.peer("127.0.0.2", world.ca("ca-mx", "mx1.secure.test"))
    world.policy(ENFORCE)

    def deliver(address: str) -> str:
        message = spool_create(
            blob=blob_store(RAW), mail_from=SENDER, recipients=[SpoolRecipient(address)]
        )
        row = outcome(message)
        assert row.status == RecipientStatus.DELIVERED, row.last_reply
        client.connection_cache.close_all()  # the next message on a new session
        return row.protection

    assert [deliver("bob@plain.test") for _ in range(3)] == ["tls"] * 3
    assert [deliver("bob@secure.test") for _ in range(3)] == ["mta-sts"] * 3
    # One for the opportunistic sessions, one for the policy's HTTPS fetch, one for the
    # MTA-STS sessions (before: one a session, 7).
    assert len(peer.received) == 6 and len(built) == 3
    world.ca("ca-other", "other.test")  # the CA file rewritten
    assert deliver("bob@secure.test") == "mta-sts"
    assert len(built) == 4


def test_tls_required_no_is_found_as_the_case_insensitive_pattern_found_it():
    """tlspolicy.tls_required_no searches the lower-cased header for a literal newline and
    name (re tried rb"(?im)^TLS-Required:..." at every octet): the same answer for any
    spelling, placement, blanks and line ending."""
    import random
    import re

    from delivery.tlspolicy import tls_required_no
    from tests.delivery.test_accept import random_headers

    old = re.compile(rb"(?im)^TLS-Required:[ \t]*No[ \t]*\r?$")
    rng = random.Random(8689)
    answers = []
    for raw in random_headers(rng, [b"TLS-Required", b"TLS-Required: No", b"TLS-Required:no"]):
        end = raw.find(b"\r\n\r\n")
        head = raw if end < 0 else raw[: end + 2]
        answers.append(tls_required_no(raw))
        assert answers[-1] is bool(old.search(head)), raw
    assert 20 < sum(answers) < 380
