"""ENVELOPE, BODY, BODYSTRUCTURE and sections from raw bytes (protocols/imap/mime.py)."""

from __future__ import annotations

import json

import pytest

from protocols.imap import mime
from tests.protocols.imap import imapdata

# RFC 3501 / RFC 9051 7.5.2's own example message.
RFC_EXAMPLE = (
    b"Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n"
    b"From: Terry Gray <gray@cac.washington.edu>\r\n"
    b"Subject: IMAP4rev1 WG mtg summary and minutes\r\n"
    b"To: imap@cac.washington.edu\r\n"
    b"cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n"
    b"Message-Id: <B27397-0100000@cac.washington.edu>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n"
    b"\r\n"
    b"Hello Joe, do you think we can meet at 3:30 tomorrow?\r\n"
    b"Second line\r\n"
)


def envelope_of(raw: bytes) -> bytes:
    return mime.analyze(raw)["envelope"].encode("latin-1")


def structure_of(raw: bytes, kind: str = "bodystructure") -> bytes:
    return mime.analyze(raw)[kind].encode("latin-1")


def test_rfc_example_envelope():
    assert envelope_of(RFC_EXAMPLE) == (
        b'("Wed, 17 Jul 1996 02:23:25 -0700 (PDT)" "IMAP4rev1 WG mtg summary and minutes" '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'(("Terry Gray" NIL "gray" "cac.washington.edu")) '
        b'((NIL NIL "imap" "cac.washington.edu")) '
        b'((NIL NIL "minutes" "CNRI.Reston.VA.US")("John Klensin" NIL "KLENSIN" "MIT.EDU")) '
        b'NIL NIL "<B27397-0100000@cac.washington.edu>")'
    )


def test_rfc_example_bodystructure_and_body():
    body_size = len(RFC_EXAMPLE) - RFC_EXAMPLE.index(b"\r\n\r\n") - 4
    assert body_size == 68
    assert structure_of(RFC_EXAMPLE) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 68 2 NIL NIL NIL NIL)'
    )
    assert structure_of(RFC_EXAMPLE, "body") == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7bit" 68 2)'
    )


def test_no_content_type_defaults_to_text_plain_us_ascii():
    raw = b"Subject: x\r\n\r\nbody"
    assert structure_of(raw) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 4 0 NIL NIL NIL NIL)'
    )


ALTERNATIVE = (
    b"From: a@example.org\r\n"
    b"Subject: alt\r\n"
    b'Content-Type: multipart/alternative; boundary="=_b1"\r\n'
    b"\r\n"
    b"This is the preamble.\r\n"
    b"--=_b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9\r\n"
    b"line two\r\n"
    b"--=_b1 \r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-ID: <html@x>\r\n"
    b"Content-Description: the HTML\r\n"
    b"\r\n"
    b"<p>caf\xc3\xa9</p>\r\n"
    b"--=_b1--\r\n"
    b"epilogue\r\n"
)


def test_multipart_alternative():
    assert structure_of(ALTERNATIVE) == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 19 1 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "utf-8") "<html@x>" "the HTML" "7bit" 12 0'
        b" NIL NIL NIL NIL)"
        b' "alternative" ("boundary" "=_b1") NIL NIL NIL)'
    )
    assert structure_of(ALTERNATIVE, "body") == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 19 1)'
        b'("text" "html" ("charset" "utf-8") "<html@x>" "the HTML" "7bit" 12 0) "alternative")'
    )


def test_part_sizes_are_the_octets_of_the_sections():
    root = mime.parse(ALTERNATIVE)
    assert mime.section(ALTERNATIVE, root, (1,)) == b"caf=C3=A9\r\nline two"
    assert mime.section(ALTERNATIVE, root, (2,)) == b"<p>caf\xc3\xa9</p>"
    assert len(b"caf=C3=A9\r\nline two") == 19
    assert len(b"<p>caf\xc3\xa9</p>") == 12
    assert mime.section(ALTERNATIVE, root, (2,), "MIME") == (
        b"Content-Type: text/html; charset=utf-8\r\n"
        b"Content-ID: <html@x>\r\n"
        b"Content-Description: the HTML\r\n\r\n"
    )
    assert mime.section(ALTERNATIVE, root, (3,)) is None
    assert mime.section(ALTERNATIVE, root, (1, 1)) is None
    assert mime.section(ALTERNATIVE, root, ()) == ALTERNATIVE
    assert mime.section(ALTERNATIVE, root, (), "TEXT") == ALTERNATIVE[ALTERNATIVE.index(b"This") :]


NESTED = (
    b"From: Outer <outer@example.org>\r\n"
    b"To: inner@example.org\r\n"
    b"Subject: fwd\r\n"
    b"Content-Type: multipart/mixed; boundary=outer\r\n"
    b"\r\n"
    b"--outer\r\n"
    b"\r\n"
    b"see attached\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"Content-Disposition: inline\r\n"
    b"\r\n"
    b"From: Inner <inner@example.net>\r\n"
    b"Subject: the original\r\n"
    b"Message-ID: <orig@example.net>\r\n"
    b"Content-Type: multipart/mixed; boundary=inner\r\n"
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"hello\r\n"
    b"--inner\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: deepest\r\n"
    b"\r\n"
    b"deep body\r\n"
    b"--inner--\r\n"
    b"--outer--\r\n"
)


def test_nested_message_rfc822_structure():
    inner_message = NESTED[NESTED.index(b"From: Inner") : NESTED.index(b"\r\n--outer--")]
    deepest = b"Subject: deepest\r\n\r\ndeep body"
    inner_env = (
        b'(NIL "the original" (("Inner" NIL "inner" "example.net")) '
        b'(("Inner" NIL "inner" "example.net")) (("Inner" NIL "inner" "example.net")) '
        b'NIL NIL NIL NIL "<orig@example.net>")'
    )
    deepest_env = b'(NIL "deepest" NIL NIL NIL NIL NIL NIL NIL NIL)'
    expected = (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 12 0 NIL NIL NIL NIL)'
        b'("message" "rfc822" NIL NIL NIL "7bit" %d '
        % len(inner_message)
        + inner_env
        + b' (("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 5 0 NIL NIL NIL NIL)'
        b'("message" "rfc822" NIL NIL NIL "7bit" %d '
        % len(deepest)
        + deepest_env
        + b' ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 9 0 NIL NIL NIL NIL) 2'
        b" NIL NIL NIL NIL)"
        b' "mixed" ("boundary" "inner") NIL NIL NIL)'
        b' %d NIL ("inline" NIL) NIL NIL)'
        % inner_message.count(b"\n")
        + b' "mixed" ("boundary" "outer") NIL NIL NIL)'
    )
    assert structure_of(NESTED) == expected
    imapdata.check_body(imapdata.read(expected), True)


@pytest.mark.parametrize(
    ("path", "spec", "expected"),
    [
        ((1,), "", b"see attached"),
        ((2,), "MIME", b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"),
        (
            (2,),
            "HEADER",
            b"From: Inner <inner@example.net>\r\nSubject: the original\r\n"
            b"Message-ID: <orig@example.net>\r\nContent-Type: multipart/mixed; boundary=inner\r\n"
            b"\r\n",
        ),
        ((2,), "HEADER.FIELDS", b"Subject: the original\r\n\r\n"),
        ((2, 1), "", b"hello"),
        ((2, 1), "MIME", b"Content-Type: text/plain\r\n\r\n"),
        ((2, 2), "", b"Subject: deepest\r\n\r\ndeep body"),
        ((2, 2), "HEADER", b"Subject: deepest\r\n\r\n"),
        ((2, 2), "TEXT", b"deep body"),
        ((2, 2, 1), "", b"deep body"),
        ((2, 2, 1), "MIME", b"Subject: deepest\r\n\r\n"),
        ((2, 2, 2), "", None),
        ((1,), "HEADER", None),  # HEADER after a number needs a message/rfc822 part
        ((2, 3), "", None),
    ],
)
def test_nested_sections(path, spec, expected):
    root = mime.parse(NESTED)
    fields = ("SUBJECT",) if spec.startswith("HEADER.FIELDS") else ()
    assert mime.section(NESTED, root, path, spec, fields) == expected


def test_section_2_text_is_the_encapsulated_body():
    root = mime.parse(NESTED)
    text = mime.section(NESTED, root, (2,), "TEXT")
    assert text.startswith(b"--inner\r\n") and text.endswith(b"--inner--")


def test_non_multipart_message_has_part_one():
    root = mime.parse(RFC_EXAMPLE)
    body = RFC_EXAMPLE[RFC_EXAMPLE.index(b"Hello") :]
    assert mime.section(RFC_EXAMPLE, root, (1,)) == body
    assert mime.section(RFC_EXAMPLE, root, (), "TEXT") == body
    assert mime.section(RFC_EXAMPLE, root, (2,)) is None


def test_header_fields_and_not_keep_order_and_folding():
    raw = (
        b"Received: by a\r\n\tcontinued\r\n"
        b"From: a@b\r\n"
        b"X-One: 1\r\n"
        b"subject: folded\r\n over two\r\n"
        b"Received: by b\r\n"
        b"\r\n"
        b"body"
    )
    root = mime.parse(raw)
    assert mime.section(raw, root, (), "HEADER.FIELDS", ("Subject", "RECEIVED")) == (
        b"Received: by a\r\n\tcontinued\r\nsubject: folded\r\n over two\r\nReceived: by b\r\n\r\n"
    )
    assert mime.section(raw, root, (), "HEADER.FIELDS.NOT", ("received", "subject")) == (
        b"From: a@b\r\nX-One: 1\r\n\r\n"
    )
    assert mime.section(raw, root, (), "HEADER.FIELDS", ("X-None",)) == b"\r\n"


ATTACHMENTS = (
    b"From: a@example.org\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n"
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"Content-Language: en\r\n"
    b"\r\n"
    b"see files\r\n"
    b"--b\r\n"
    b"Content-Type: application/pdf;\r\n"
    b' name*0="long file ";\r\n'
    b' name*1="name.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment;\r\n"
    b" filename*=utf-8''%E2%82%AC%20rates.pdf\r\n"
    b"Content-Language: en, de\r\n"
    b"Content-Location: http://example.org/rates.pdf\r\n"
    b"Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--b\r\n"
    b"Content-Type: image/png; name*0*=utf-8''%E2%82%AC; name*1=\" x.png\"\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b'Content-Disposition: inline; filename="a \\"quoted\\" name.png"\r\n'
    b"\r\n"
    b"iVBORw0KGgo=\r\n"
    b"--b--\r\n"
)


def test_attachments_with_rfc2231_names():
    assert structure_of(ATTACHMENTS) == (
        b'(("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 9 0 NIL NIL "en" NIL)'
        b'("application" "pdf" ("name" "long file name.pdf") NIL NIL "base64" 12'
        b' "Q2hlY2sgSW50ZWdyaXR5IQ==" ("attachment" ("filename*" "utf-8\'\'%E2%82%AC%20rates.pdf"))'
        b' ("en" "de") "http://example.org/rates.pdf")'
        b'("image" "png" ("name*" "utf-8\'\'%E2%82%AC%20x.png") NIL NIL "base64" 12'
        b' NIL ("inline" ("filename" "a \\"quoted\\" name.png")) NIL NIL)'
        b' "mixed" ("boundary" "b") NIL NIL NIL)'
    )


def test_binary_decodes_transfer_encodings():
    root = mime.parse(ATTACHMENTS)
    assert mime.binary(ATTACHMENTS, root, (2,)) == b"%PDF-1.4\n"
    assert mime.binary(ATTACHMENTS, root, (3,)) == b"\x89PNG\r\n\x1a\n"
    assert mime.binary(ATTACHMENTS, root, (1,)) == b"see files"
    assert mime.binary(ATTACHMENTS, root, (9,)) is None
    root = mime.parse(ALTERNATIVE)
    assert mime.binary(ALTERNATIVE, root, (1,)) == "café\r\nline two".encode()


def test_binary_of_whole_leaf_message_decodes_the_body_only():
    raw = b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n"
    root = mime.parse(raw)
    assert (
        mime.binary(raw, root, ()) == b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\nhi"
    )
    assert mime.binary(raw, root, (1,)) == b"hi"


def test_unknown_transfer_encoding_raises():
    raw = b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 f\r\n"
    root = mime.parse(raw)
    with pytest.raises(mime.UnknownCTE):
        mime.binary(raw, root, (1,))


def test_quoted_printable_follows_rfc2045_rules():
    # RFC 2045 6.7: trailing white space is dropped, "=" then white space is a soft break.
    encoded = b"one  \r\ntwo=\r\nthree\t=  \r\n=3D=3d=ZZ =\r\nfour \t\r\nlast=41"
    assert mime.decode_qp(encoded) == b"one\r\ntwothree\t===ZZ four\r\nlastA"
    assert mime.decode_qp(b"bare lf  \nnext=\nline\n") == b"bare lf\nnextline\n"


def test_bad_base64_decodes_what_it_can():
    assert mime.decode_cte(b"aGVs\r\nbG8*!\r\n", b"BASE64") == b"hello"
    assert mime.decode_cte(b"a", b"base64") == b""
    assert mime.decode_cte(b"a=3D=\r\nb", b"quoted-printable") == b"a=b"


# --- Addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"a@b", b'((NIL NIL "a" "b"))'),
        (b'"Smith, John" <js@x.org>', b'(("Smith, John" NIL "js" "x.org"))'),
        (b"John Q. Public <jqp@x>", b'(("John Q. Public" NIL "jqp" "x"))'),
        (b"e@f (Eve Example)", b'(("Eve Example" NIL "e" "f"))'),
        (b"<@r1,@r2:u@h>", b'((NIL "@r1,@r2" "u" "h"))'),
        (b"undisclosed-recipients:;", b'((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))'),
        (
            b'Team: a@b, "Q, R" <c@d>;, e@f',
            b'((NIL NIL "Team" NIL)(NIL NIL "a" "b")("Q, R" NIL "c" "d")(NIL NIL NIL NIL)'
            b'(NIL NIL "e" "f"))',
        ),
        (b"bare", b'((NIL NIL "bare" "MISSING_DOMAIN"))'),
        (b'"odd \\"name\\"" <x@y>', b'(("odd \\"name\\"" NIL "x" "y"))'),
        (b'"quoted local"@y', b'((NIL NIL "\\"quoted local\\"" "y"))'),
        (b"=?utf-8?q?J=C3=B6rg?= <j@x>", b'(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x"))'),
        (b"a@b,, ,c@[1.2.3.4]", b'((NIL NIL "a" "b")(NIL NIL "c" "[1.2.3.4]"))'),
        (b"Name Only <>", b'(("Name Only" NIL "MISSING_MAILBOX" "MISSING_DOMAIN"))'),
        (b"", b"NIL"),
        (b"  ,  ", b"NIL"),
        # The display name is the phrase as written (white space runs become one space):
        (
            b"alice@example.com <bob@example.com>",
            b'(("alice@example.com" NIL "bob" "example.com"))',
        ),
        (b"Dr.Who  the\t Doctor <w@x>", b'(("Dr.Who the Doctor" NIL "w" "x"))'),
        (b'"Joe Q." Public <j@x>', b'(("Joe Q. Public" NIL "j" "x"))'),
        (b"a (comment) b <x@y>, c(d)e <z@y>", b'(("a b" NIL "x" "y")("c e" NIL "z" "y"))'),
    ],
)
def test_address_lists(value, expected):
    assert mime._address_list(value) == expected


def test_sender_and_reply_to_default_to_from_and_empty_fields():
    raw = b"From: a@b\r\nSender:\r\nReply-To: r@s\r\nSubject:\r\nDate: \r\n\r\n"
    assert envelope_of(raw) == (
        b'("" "" ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) ((NIL NIL "r" "s")) NIL NIL NIL NIL NIL)'
    )


def test_repeated_address_fields_are_concatenated():
    raw = (
        b"From: a@b\r\nTo: one@x\r\nCc: c1@x\r\nTo: Two <two@x>,\r\n three@x\r\n"
        b"Cc: Group: c2@x;\r\nSubject: first\r\nSubject: second\r\n\r\n"
    )
    # Every To and Cc field, in order (SEARCH TO/CC match them all); single-valued
    # fields keep the first.
    assert envelope_of(raw) == (
        b'(NIL "first" ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) ((NIL NIL "a" "b")) '
        b'((NIL NIL "one" "x")("Two" NIL "two" "x")(NIL NIL "three" "x")) '
        b'((NIL NIL "c1" "x")(NIL NIL "Group" NIL)(NIL NIL "c2" "x")(NIL NIL NIL NIL)) '
        b"NIL NIL NIL)"
    )


def test_eight_bit_headers_become_literals():
    raw = b'From: J\xc3\xb6rg <j@x>\r\nSubject: caf\xc3\xa9 "x"\r\n\r\n'
    env = envelope_of(raw)
    assert env == (
        b'(NIL {9}\r\ncaf\xc3\xa9 "x" (({5}\r\nJ\xc3\xb6rg NIL "j" "x")) '
        b'(({5}\r\nJ\xc3\xb6rg NIL "j" "x")) (({5}\r\nJ\xc3\xb6rg NIL "j" "x")) '
        b"NIL NIL NIL NIL NIL)"
    )
    imapdata.check_envelope(imapdata.read(env))


# --- Broken MIME: always a valid ENVELOPE and BODYSTRUCTURE ------------------------------


def _deep(levels: int) -> bytes:
    out = b"Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for i in range(levels):
        out += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1)
    return out + b"--b%d\r\n\r\nleaf\r\n" % levels


def _deep_messages(levels: int) -> bytes:
    out = b""
    for i in range(levels):
        out += b"Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n" % i
    return out + b"Subject: last\r\n\r\nbody\r\n"


BROKEN = {
    "empty": b"",
    "no header at all": b"\r\njust a body\r\n",
    "no blank line": b"Subject: only a header\r\nFrom: a@b\r\n",
    "not even a header": b"hello world, no colon here",
    "bare LF": b"Subject: lf\nContent-Type: multipart/mixed; boundary=x\n\n--x\n\nhi\n--x--\n",
    "missing close delimiter": (
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\none\r\n--x\r\n\r\ntwo"
    ),
    "no delimiter at all": b"Content-Type: multipart/mixed; boundary=x\r\n\r\nno parts here\r\n",
    "no boundary parameter": b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nhi\r\n",
    "empty boundary": b'Content-Type: multipart/mixed; boundary=""\r\n\r\n--\r\n\r\nhi\r\n',
    "bad content type": b"Content-Type: ;;;/\r\n\r\nx",
    "type without subtype": b"Content-Type: text\r\n\r\nx",
    "bad parameters": b'Content-Type: text/plain; =; a; b="unterminated; c*9*=%%%\r\n\r\nx',
    "bad encodings": (
        b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64"
    ),
    "8-bit everywhere": (
        b"Fr\xf6m: x\r\nFrom: \xff\xfe\x00 <\xe9@\xe9>\r\nSubject: \x00\x01\x7f\r\n"
        b"Content-Type: text/\xe9; charset=\xe9\r\n\r\n\xff\x00"
    ),
    "unbalanced comments and quotes": (
        b'From: "unterminated <a@b>\r\nTo: (comment (nested <c@d>\r\nCc: <<<>>>,@,:;\r\n\r\n'
    ),
    "binary junk": bytes(range(256)) * 4,
    "message/rfc822 with nothing in it": b"Content-Type: message/rfc822\r\n\r\n",
    "digest defaults": (
        b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: in digest\r\n"
        b"\r\nx\r\n--d--\r\n"
    ),
    "1000 nested multiparts": _deep(1000),
    "1000 nested messages": _deep_messages(1000),
    "boundary prefix of another": (
        b"Content-Type: multipart/mixed; boundary=ab\r\n\r\n--ab\r\n"
        b"Content-Type: multipart/mixed; boundary=abc\r\n\r\n--abc\r\n\r\ninner\r\n--abc--\r\n"
        b"--ab--\r\n"
    ),
}


@pytest.mark.parametrize("raw", BROKEN.values(), ids=BROKEN.keys())
def test_broken_mime_still_gives_valid_structures(raw):
    analysis = mime.analyze(raw)
    imapdata.check_envelope(imapdata.read(analysis["envelope"].encode("latin-1")))
    imapdata.check_body(imapdata.read(analysis["bodystructure"].encode("latin-1")), True)
    imapdata.check_body(imapdata.read(analysis["body"].encode("latin-1")), False)
    assert json.loads(json.dumps(analysis)) == analysis
    root = mime.parse(raw)
    for path in [(), (1,), (1, 1), (2,), (1, 2, 3)]:
        for spec in ("", "HEADER", "TEXT", "MIME"):
            if spec == "MIME" and not path:
                continue
            data = mime.section(raw, root, path, spec)
            assert data is None or raw.find(data) >= 0


def test_nesting_is_capped():
    structure = structure_of(_deep(1000))
    assert structure.count(b'"mixed"') == mime.MAX_DEPTH
    assert b'"application" "octet-stream"' in structure


def test_huge_part_counts_keep_no_tree_in_the_cache():
    raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n" + b"--x\r\n\r\np\r\n" * 1500
    analysis = mime.analyze(raw)
    assert analysis["tree"] is None and analysis["bodystructure"].count('"plain"') == 1500
    tree = mime.tree_from_cache(analysis, raw)
    assert mime.section(raw, tree, (7,)) == b"p"
    assert mime.section(raw, tree, (1500,)) == b"p\r\n"  # no close delimiter: to the end
    with pytest.raises(ValueError):
        mime.tree_from_cache(analysis)
    assert mime.analyze(NESTED)["tree"] is not None


def test_boundary_that_prefixes_another_is_not_confused():
    root = mime.parse(BROKEN["boundary prefix of another"])
    assert mime.section(BROKEN["boundary prefix of another"], root, (1, 1)) == b"inner"


def test_cache_round_trip_gives_the_same_sections():
    for raw in (NESTED, ATTACHMENTS, ALTERNATIVE, RFC_EXAMPLE):
        cache = json.loads(json.dumps(mime.analyze(raw)))
        assert mime.cache_valid(cache)
        tree = mime.tree_from_cache(cache)
        root = mime.parse(raw)
        for path in [(1,), (2,), (2, 1), (2, 2), (2, 2, 1), (3,)]:
            for spec in ("", "MIME", "HEADER", "TEXT"):
                assert mime.section(raw, tree, path, spec) == mime.section(raw, root, path, spec)
    assert not mime.cache_valid({"v": 0, "tree": []})
    assert not mime.cache_valid(None)


def test_every_size_is_the_octet_count_of_its_section():
    for raw in (NESTED, ATTACHMENTS, ALTERNATIVE, RFC_EXAMPLE, BROKEN["bare LF"]):
        root = mime.parse(raw)
        body = imapdata.read(structure_of(raw))
        stack = [(body, ())]
        while stack:
            node, path = stack.pop()
            if isinstance(node[0], list):
                children = []
                for item in node:  # the bodies come first, then the subtype
                    if not isinstance(item, list):
                        break
                    children.append(item)
                stack.extend((child, (*path, i + 1)) for i, child in enumerate(children))
                continue
            data = mime.section(raw, root, path or (1,))
            assert len(data) == node[6], (path, data)
            if node[0].lower() == b"text":
                assert node[7] == data.count(b"\n")  # Dovecot's count: the line feeds


def test_analysis_of_a_big_multipart():
    # Timings are printed, not asserted: speed targets live in bench/.
    import time

    parts = b"".join(
        b"--z\r\nContent-Type: text/plain\r\n\r\n" + b"line of text\r\n" * 50 for _ in range(2000)
    )
    raw = b"Content-Type: multipart/mixed; boundary=z\r\n\r\n" + parts + b"--z--\r\n"
    started = time.perf_counter()
    analysis = mime.analyze(raw)
    elapsed = time.perf_counter() - started
    assert analysis["bodystructure"].count('"plain"') == 2000
    print(f"analyze, 2000 parts: {elapsed * 1000:.1f} ms")


def test_large_attachment():
    import base64
    import time

    payload = bytes(range(256)) * 40_000  # 10 MB
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    raw = (
        b"Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nhi\r\n--q\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + encoded + b"--q--\r\n"
    )
    started = time.perf_counter()
    root = mime.parse(raw)
    parsed = time.perf_counter() - started
    assert mime.binary(raw, root, (2,)) == payload
    assert len(mime.section(raw, root, (2,))) == len(encoded) - 2
    print(f"parse, 10 MB attachment: {parsed * 1000:.1f} ms")


def test_tree_only_parse_has_the_same_parts_and_charsets():
    for raw in (NESTED, ATTACHMENTS, ALTERNATIVE, RFC_EXAMPLE):
        full, lean = mime.parse(raw), mime.parse(raw, render=False)
        cached = mime.tree_from_cache(mime.analyze(raw))
        assert mime._flatten(full) == mime._flatten(lean) == mime._flatten(cached)
        assert lean.envelope == b"" and lean.fields == b""
        expected = [(p.bs, p.be, c) for p, c in mime.text_parts(raw, full)]
        assert [(p.bs, p.be, c) for p, c in mime.text_parts(raw, lean)] == expected
        assert [(p.bs, p.be, c) for p, c in mime.text_parts(raw, cached)] == expected
    assert [c for _p, c in mime.text_parts(ALTERNATIVE, mime.parse(ALTERNATIVE))] == [
        b"utf-8",
        b"utf-8",
    ]


# A nested multipart that reuses its parent's boundary (Outlook Express for Mac, much spam).
SAME_BOUNDARY = (
    b"From: a@example.org\r\n"
    b"Subject: same boundary\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="B"\r\n'
    b"\r\n"
    b"--B\r\n"
    b'Content-Type: multipart/alternative; boundary="B"\r\n'
    b"\r\n"
    b"--B\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"plain text\r\n"
    b"--B\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>html</p>\r\n"
    b"--B--\r\n"
    b"\r\n"
    b"--B\r\n"
    b'Content-Type: application/pdf; name="x.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQK\r\n"
    b"--B--\r\n"
)


def test_nested_multipart_reusing_its_parents_boundary_keeps_every_part():
    # Dovecot's message-parser: a delimiter line belongs to the innermost open multipart with
    # that boundary; its close delimiter hands the boundary back to the parent.
    assert structure_of(SAME_BOUNDARY) == (
        b'((("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 10 0 NIL NIL NIL NIL)'
        b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 11 0 NIL NIL NIL NIL)'
        b' "alternative" ("boundary" "B") NIL NIL NIL)'
        b'("application" "pdf" ("name" "x.pdf") NIL NIL "base64" 12 NIL NIL NIL NIL)'
        b' "mixed" ("boundary" "B") NIL NIL NIL)'
    )
    root = mime.parse(SAME_BOUNDARY)
    assert mime.section(SAME_BOUNDARY, root, (1, 1)) == b"plain text"
    assert mime.section(SAME_BOUNDARY, root, (1, 2)) == b"<p>html</p>"
    assert mime.section(SAME_BOUNDARY, root, (1, 2), "MIME") == b"Content-Type: text/html\r\n\r\n"
    assert mime.section(SAME_BOUNDARY, root, (2,)) == b"JVBERi0xLjQK"
    assert mime.binary(SAME_BOUNDARY, root, (2,)) == b"%PDF-1.4\n"
    assert mime.section(SAME_BOUNDARY, root, (1,)).endswith(b"<p>html</p>\r\n--B--\r\n")


def test_same_boundary_inner_multipart_without_close_ends_at_the_parents_close():
    raw = (
        b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: multipart/related; boundary=B\r\n\r\n"
        b"--B\r\n\r\none\r\n--B\r\n\r\ntwo\r\n--B--\r\n"
    )
    root = mime.parse(raw)
    # Every delimiter belongs to the inner multipart; its close ends it and the parent.
    assert len(root.children) == 1 and len(root.children[0].children) == 2
    assert mime.section(raw, root, (1, 2)) == b"two"


def test_text_part_without_charset_shows_the_rfc2045_default_as_dovecot_does():
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain; format=flowed\r\n\r\nno final line feed\r\n"
        b"--b\r\nContent-Type: text/html\r\n\r\n<p>two</p>\r\nlines\r\n\r\n"
        b"--b--\r\n"
    )
    # RFC 2045 5.2: no charset means US-ASCII; Dovecot appends "charset" "us-ascii" to the
    # parameters and counts the line feeds of the body (the one before a delimiter is the
    # delimiter's, RFC 2046 5.1.1).
    assert structure_of(raw) == (
        b'(("text" "plain" ("format" "flowed" "charset" "us-ascii") NIL NIL "7bit" 18 0'
        b" NIL NIL NIL NIL)"
        b'("text" "html" ("charset" "us-ascii") NIL NIL "7bit" 19 2 NIL NIL NIL NIL)'
        b' "mixed" ("boundary" "b") NIL NIL NIL)'
    )


def test_delimiter_scan_is_linear_in_the_nesting_and_size():
    import time

    # 99 distinct nested boundaries over 5,000 parts at the bottom, and a body of "--" lines.
    raw = _deep(99)[: -len(b"\r\nleaf\r\n")] + b"\r\n\r\n" + b"--\r\n" * 200_000
    raw += b"".join(b"--b99\r\n\r\npart\r\n" for _ in range(5000))
    started = time.perf_counter()
    analysis = mime.analyze(raw)
    assert time.perf_counter() - started < 5
    assert analysis["bodystructure"].count('"plain"') >= 5000
