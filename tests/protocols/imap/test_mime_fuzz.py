"""Whatever the bytes, ENVELOPE, BODY and BODYSTRUCTURE are well formed and every section
lies inside the message (RFC 9051 7.5.2 grammar), and nothing raises."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.imap import mime
from tests.protocols.imap import imapdata
from tests.protocols.imap.test_mime import ALTERNATIVE, ATTACHMENTS, NESTED, RFC_EXAMPLE

CORPUS = [ALTERNATIVE, ATTACHMENTS, NESTED, RFC_EXAMPLE]
# Pieces that steer mutations towards the interesting places of a MIME parser.
TOKENS = [
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"--",
    b"--zz",
    b"--outer",
    b"--inner--",
    b"--=_b1",
    b"--b",
    b"Content-Type: multipart/mixed; boundary=zz\r\n",
    b"Content-Type: message/rfc822\r\n",
    b'Content-Type: text/plain; charset="',
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"; name*0*=utf-8''%E2; name*1=x",
    b'"',
    b"(",
    b")",
    b"<",
    b">",
    b":",
    b";",
    b",",
    b"@",
    b"\\",
    b"=?utf-8?q?",
    b"\x00",
    b"\xff",
    b" ",
    b"\t",
]


def check(raw: bytes) -> None:
    analysis = mime.analyze(raw)
    imapdata.check_envelope(imapdata.read(analysis["envelope"].encode("latin-1")))
    imapdata.check_body(imapdata.read(analysis["bodystructure"].encode("latin-1")), True)
    imapdata.check_body(imapdata.read(analysis["body"].encode("latin-1")), False)
    cache = json.loads(json.dumps(analysis))
    tree = mime.tree_from_cache(cache, raw)
    for path in [(), (1,), (2,), (1, 1), (2, 1), (2, 2), (2, 2, 1), (3,)]:
        for spec in ("", "HEADER", "TEXT", "MIME", "HEADER.FIELDS"):
            if spec == "MIME" and not path:
                continue
            data = mime.section(raw, tree, path, spec, ("subject",))
            if data is not None and spec != "HEADER.FIELDS":
                assert data in raw
        try:
            mime.binary(raw, tree, path)
        except mime.UnknownCTE:
            pass


@st.composite
def mutated(draw) -> bytes:
    raw = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 12))):
        pos = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "cut"]))
        if action == "insert":
            raw[pos:pos] = draw(st.sampled_from(TOKENS) | st.binary(max_size=8))
        elif action == "delete":
            del raw[pos : pos + draw(st.integers(1, 40))]
        elif action == "replace":
            raw[pos : pos + 1] = draw(st.binary(min_size=1, max_size=1))
        else:
            raw = raw[:pos]
    return bytes(raw)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages(raw):
    check(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes(raw):
    check(raw)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(TOKENS) | st.text(max_size=5).map(str.encode), max_size=60))
def test_token_soup(pieces):
    check(b"".join(pieces))
