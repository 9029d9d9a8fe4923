"""CardDAV over a real socket (the runmail web server), the requests DAVx5 makes: discovery
from /.well-known/carddav, PROPFIND of principal, home and book, PUT/GET/DELETE with ETags,
addressbook-multiget, addressbook-query and sync-collection; cards read back with vobject."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import requests
import vobject
from django.db import connections

from mailboxes import services, vcard
from mailhost import runner
from tests.support.servers import running
from tests.webmail.conftest import release_server_connections

pytestmark = pytest.mark.django_db(transaction=True)
NS = {"d": "DAV:", "card": "urn:ietf:params:xml:ns:carddav", "cs": "http://calendarserver.org/ns/"}
AUTH = ("alice@example.org", "secret")


@pytest.fixture
def dav(live_settings, monkeypatch, alice, bob):
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 0)
    with running(runner.WEB) as ports:
        session = requests.Session()
        session.auth = AUTH
        session.base = f"http://127.0.0.1:{ports['web']}"
        yield session
    release_server_connections()


def call(session, method, path, body=None, **headers):
    data = body.encode() if isinstance(body, str) else body
    return session.request(method, session.base + path, data=data, headers=headers)


def xml(response):
    assert response.status_code == 207, (response.status_code, response.text)
    return ET.fromstring(response.content)


PROPFIND_HOME = """<?xml version="1.0"?><d:propfind xmlns:d="DAV:"
 xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><d:current-user-principal/>
 <card:addressbook-home-set/><d:resourcetype/><d:displayname/><d:sync-token/></d:prop></d:propfind>"""

CARD = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nEMAIL:{email}\r\nEND:VCARD\r\n"


def test_discovery_and_authentication(dav):
    found = requests.get(dav.base + "/.well-known/carddav", allow_redirects=False)
    assert found.status_code == 301 and found.headers["Location"] == "/dav/"
    anonymous = requests.request("PROPFIND", dav.base + "/dav/", headers={"Depth": "0"})
    assert anonymous.status_code == 401 and "Basic" in anonymous.headers["WWW-Authenticate"]
    wrong = requests.request("PROPFIND", dav.base + "/dav/", auth=("alice@example.org", "no"))
    assert wrong.status_code == 401
    tree = xml(call(dav, "PROPFIND", "/dav/", PROPFIND_HOME, Depth="1"))
    assert tree.find(".//d:current-user-principal/d:href", NS).text == "/dav/"
    assert tree.find(".//card:addressbook-home-set/d:href", NS).text == "/dav/"
    books = [
        r.find("d:href", NS).text
        for r in tree.findall("d:response", NS)
        if r.find(".//d:resourcetype/card:addressbook", NS) is not None
    ]
    assert books == ["/dav/book/"]
    options = call(dav, "OPTIONS", "/dav/book/")
    assert "addressbook" in options.headers["DAV"]


def test_create_list_change_sync_and_delete(dav, alice):
    # create (If-None-Match: * as DAVx5 sends it)
    put = call(dav, "PUT", "/dav/book/dana.vcf",
               CARD.format(uid="dana", name="Dana Scully", email="dana@fbi.example"),
               **{"If-None-Match": "*", "Content-Type": "text/vcard"})  # fmt: skip
    assert put.status_code == 201 and put.headers["ETag"]
    again = call(dav, "PUT", "/dav/book/dana.vcf", CARD.format(uid="dana", name="X", email="x@y"),
                 **{"If-None-Match": "*"})  # fmt: skip
    assert again.status_code == 412
    # a card made in the webmail is listed too
    services.contacts_put(
        mailbox=alice, cards=[vcard.write(name="Fox", emails=["fox@fbi.example"], uid="fox")]
    )
    # initial sync
    sync = """<?xml version="1.0"?><d:sync-collection xmlns:d="DAV:"><d:sync-token/>
      <d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"""
    tree = xml(call(dav, "REPORT", "/dav/book/", sync, Depth="0"))
    hrefs = sorted(r.find("d:href", NS).text for r in tree.findall("d:response", NS))
    assert hrefs == ["/dav/book/dana.vcf", "/dav/book/fox.vcf"]
    token = tree.find("d:sync-token", NS).text
    # listing with ETags (PROPFIND Depth 1) and the cards by multiget
    listing = xml(call(dav, "PROPFIND", "/dav/book/",
                       '<d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>',
                       Depth="1"))  # fmt: skip
    etags = {r.find("d:href", NS).text: r.find(".//d:getetag", NS).text
             for r in listing.findall("d:response", NS) if r.find(".//d:getetag", NS) is not None}  # fmt: skip
    assert etags["/dav/book/dana.vcf"] == put.headers["ETag"]
    multiget = """<?xml version="1.0"?><card:addressbook-multiget xmlns:d="DAV:"
      xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><d:getetag/><card:address-data/>
      </d:prop><d:href>/dav/book/dana.vcf</d:href><d:href>/dav/book/fox.vcf</d:href>
      </card:addressbook-multiget>"""
    tree = xml(call(dav, "REPORT", "/dav/book/", multiget, Depth="1"))
    cards = [vobject.readOne(d.text) for d in tree.findall(".//card:address-data", NS)]
    assert sorted(c.fn.value for c in cards) == ["Dana Scully", "Fox"]
    query = """<card:addressbook-query xmlns:d="DAV:" xmlns:card="urn:ietf:params:xml:ns:carddav">
      <d:prop><d:getetag/></d:prop></card:addressbook-query>"""
    assert (
        len(xml(call(dav, "REPORT", "/dav/book/", query, Depth="1")).findall("d:response", NS)) == 2
    )
    # change with the ETag, a stale ETag refused
    changed = call(dav, "PUT", "/dav/book/dana.vcf",
                   CARD.format(uid="dana", name="Dana K. Scully", email="dana@fbi.example"),
                   **{"If-Match": put.headers["ETag"]})  # fmt: skip
    assert changed.status_code == 204 and changed.headers["ETag"] != put.headers["ETag"]
    stale = call(dav, "PUT", "/dav/book/dana.vcf", CARD.format(uid="dana", name="Old", email="o@x"),
                 **{"If-Match": put.headers["ETag"]})  # fmt: skip
    assert stale.status_code == 412
    assert vobject.readOne(call(dav, "GET", "/dav/book/dana.vcf").text).fn.value == "Dana K. Scully"
    # delete one, then sync from the token: one changed, one gone
    assert call(dav, "DELETE", "/dav/book/fox.vcf").status_code == 204
    tree = xml(call(dav, "REPORT", "/dav/book/",
                    sync.replace("<d:sync-token/>", f"<d:sync-token>{token}</d:sync-token>"), Depth="0"))  # fmt: skip
    changes = {r.find("d:href", NS).text: (r.findtext("d:status", None, NS) or "200")
               for r in tree.findall("d:response", NS)}  # fmt: skip
    assert changes == {"/dav/book/dana.vcf": "200", "/dav/book/fox.vcf": "HTTP/1.1 404 Not Found"}
    assert tree.find("d:sync-token", NS).text != token
    # what the webmail shows
    from mailboxes.models import Contact

    assert list(Contact.objects.filter(mailbox=alice).values_list("name", flat=True)) == [
        "Dana K. Scully"
    ]


def test_one_mailbox_does_not_see_anothers_book(dav, alice, bob):
    services.contacts_put(
        mailbox=bob, cards=[vcard.write(name="Bob's", emails=["b@x.example"], uid="b")]
    )
    assert call(dav, "GET", "/dav/book/b.vcf").status_code == 404
    assert call(dav, "DELETE", "/dav/book/b.vcf").status_code == 404


def test_an_app_password_signs_in_to_carddav(dav, alice):
    _app, secret = services.app_password_create(mailbox=alice, name="Phone")
    response = requests.request(
        "PROPFIND",
        dav.base + "/dav/book/",
        auth=("alice@example.org", secret),
        headers={"Depth": "0"},
    )
    assert response.status_code == 207


QUERY = """<?xml version="1.0"?><card:addressbook-query xmlns:d="DAV:"
  xmlns:card="urn:ietf:params:xml:ns:carddav"><d:prop><d:getetag/><card:address-data/></d:prop>
  {filter}</card:addressbook-query>"""

CARDS = {
    "dana": "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:dana\r\nFN:Dana Scully\r\nN:Scully;Dana;;;\r\n"
    "EMAIL;TYPE=work:dana@fbi.example\r\nEMAIL;TYPE=home:dana@home.example\r\n"
    "TEL;TYPE=cell:+1 555 0100\r\nEND:VCARD\r\n",
    "fox": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:fox\r\nFN:Fox Mulder\r\n"
    "EMAIL;TYPE=work:fox@fbi.example\r\nEND:VCARD\r\n",
    "jörg": "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:jörg\r\nFN:JÖRG Müller\r\n"
    "item1.EMAIL:joerg@example.de\r\nNOTE:met at the conference\\, 2019\r\nEND:VCARD\r\n",
}


def _query(dav, filter_xml, **headers):
    return call(dav, "REPORT", "/dav/book/", QUERY.format(filter=filter_xml), Depth="1", **headers)


def _names(response):
    tree = xml(response)
    return sorted(
        vobject.readOne(d.text).fn.value for d in tree.findall(".//card:address-data", NS)
    )


def test_addressbook_query_applies_the_filter(dav, alice):
    """RFC 6352 8.6 and 10.5: prop-filter, text-match (match types, collations, negation),
    param-filter, is-not-defined, anyof/allof, limit; cards read back with vobject."""
    for uid, text in CARDS.items():
        put = call(dav, "PUT", f"/dav/book/{uid}.vcf", text.encode(), **{"If-None-Match": "*"})
        assert put.status_code == 201, put.text

    def names(filter_xml):
        return _names(_query(dav, f"<card:filter {filter_xml}</card:filter>"))

    # the default: contains, i;unicode-casemap (case and accents of another case match)
    assert names('><card:prop-filter name="FN"><card:text-match>SCULLY</card:text-match>'
                 "</card:prop-filter>") == ["Dana Scully"]  # fmt: skip
    assert names('><card:prop-filter name="FN"><card:text-match>jörg</card:text-match>'
                 "</card:prop-filter>") == ["JÖRG Müller"]  # fmt: skip
    # any instance of a property matches (Dana's second EMAIL), grouped properties too
    assert names('><card:prop-filter name="EMAIL"><card:text-match match-type="ends-with">'
                 "home.example</card:text-match></card:prop-filter>") == ["Dana Scully"]  # fmt: skip
    assert names('><card:prop-filter name="EMAIL"><card:text-match match-type="starts-with">'
                 "joerg@</card:text-match></card:prop-filter>") == ["JÖRG Müller"]  # fmt: skip
    assert names('><card:prop-filter name="EMAIL"><card:text-match match-type="equals">'
                 "fox@fbi.example</card:text-match></card:prop-filter>") == ["Fox Mulder"]  # fmt: skip
    assert names('><card:prop-filter name="EMAIL"><card:text-match match-type="equals">'
                 "fox@fbi</card:text-match></card:prop-filter>") == []  # fmt: skip
    # i;octet is case-sensitive, i;ascii-casemap folds ASCII only
    assert names('><card:prop-filter name="FN"><card:text-match collation="i;octet">'
                 "scully</card:text-match></card:prop-filter>") == []  # fmt: skip
    assert names('><card:prop-filter name="FN"><card:text-match collation="i;ascii-casemap">'
                 "jörg</card:text-match></card:prop-filter>") == []  # fmt: skip
    assert names('><card:prop-filter name="FN"><card:text-match collation="i;ascii-casemap">'
                 "mulder</card:text-match></card:prop-filter>") == ["Fox Mulder"]  # fmt: skip
    # values are compared unescaped (NOTE's \\,)
    assert names('><card:prop-filter name="NOTE"><card:text-match>conference, 2019'
                 "</card:text-match></card:prop-filter>") == ["JÖRG Müller"]  # fmt: skip
    # negate-condition
    assert names('><card:prop-filter name="FN"><card:text-match negate-condition="yes">'
                 "fbi</card:text-match></card:prop-filter>") == [
        "Dana Scully", "Fox Mulder", "JÖRG Müller"]  # fmt: skip
    assert names('><card:prop-filter name="EMAIL"><card:text-match negate-condition="yes">'
                 "fbi.example</card:text-match></card:prop-filter>") == [
        "Dana Scully", "JÖRG Müller"]  # fmt: skip
    # an empty prop-filter: the property exists; is-not-defined: it does not
    assert names('><card:prop-filter name="TEL"/>') == ["Dana Scully"]
    assert names('><card:prop-filter name="TEL"><card:is-not-defined/></card:prop-filter>') == [
        "Fox Mulder", "JÖRG Müller"]  # fmt: skip
    # param-filter: TYPE=home on some EMAIL; a parameter no EMAIL has
    assert names('><card:prop-filter name="EMAIL"><card:param-filter name="TYPE">'
                 '<card:text-match match-type="equals">home</card:text-match>'
                 "</card:param-filter></card:prop-filter>") == [
        "Dana Scully"]  # fmt: skip
    assert names('><card:prop-filter name="EMAIL"><card:param-filter name="TYPE">'
                 "<card:is-not-defined/></card:param-filter></card:prop-filter>") == [
        "JÖRG Müller"]  # fmt: skip
    # anyof (the default) and allof, between prop-filters and within one
    two = ('<card:prop-filter name="FN"><card:text-match>fox</card:text-match>'
           '</card:prop-filter><card:prop-filter name="TEL"/>')  # fmt: skip
    assert names(f">{two}") == ["Dana Scully", "Fox Mulder"]
    assert names(f' test="allof">{two}') == []
    both = ('<card:prop-filter name="EMAIL" test="allof"><card:text-match>fbi'
            "</card:text-match><card:text-match>home</card:text-match></card:prop-filter>")  # fmt: skip
    assert names(f">{both}") == ["Dana Scully"]
    # an empty filter matches every card
    assert names(">") == ["Dana Scully", "Fox Mulder", "JÖRG Müller"]


def test_addressbook_query_limit_and_refusals(dav, alice):
    for uid, text in CARDS.items():
        call(dav, "PUT", f"/dav/book/{uid}.vcf", text.encode())
    limited = _query(dav, "<card:filter/><card:limit><card:nresults>2</card:nresults></card:limit>")
    tree = xml(limited)
    statuses = {r.find("d:href", NS).text: r.findtext("d:status", None, NS)
                for r in tree.findall("d:response", NS)}  # fmt: skip
    assert len(tree.findall(".//card:address-data", NS)) == 2
    # RFC 6352 8.6.2: truncation is a 507 for the Request-URI
    assert statuses["/dav/book/"] == "HTTP/1.1 507 Insufficient Storage"
    assert tree.find(".//d:error/d:number-of-matches-within-limits", NS) is not None
    # an unknown collation: the supported-collation precondition
    refused = _query(dav, '<card:filter><card:prop-filter name="FN"><card:text-match '
                     'collation="i;klingon">x</card:text-match></card:prop-filter></card:filter>')  # fmt: skip
    assert refused.status_code == 403
    error = ET.fromstring(refused.content)
    assert error.find("card:supported-collation", NS) is not None
