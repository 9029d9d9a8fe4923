"""CardDAV (RFC 6352) for the mailbox's address book, so phones sync it (DAVx5, iOS).

One book per mailbox at /dav/book/, cards at /dav/book/<uid>.vcf. The principal and the
address book home are /dav/ (a client finds them from /.well-known/carddav, RFC 6764).
HTTP Basic with the mailbox address and its password, or an app password (as for IMAP).
Served: OPTIONS, PROPFIND (Depth 0/1), REPORT addressbook-multiget, addressbook-query
(prop-filters, param-filters, text-matches and CARDDAV:limit applied, webmail/cardquery.py),
sync-collection (RFC 6578, from Contact.modseq and ContactDeleted tombstones), GET, PUT
(If-Match / If-None-Match: *), DELETE. ETags are the card's change number. Logins go
through services.mailbox_login (logged, counted by the limiter's record) but do not wait
on throttle.admit yet.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from mailboxes import selectors, services, vcard
from mailboxes.exceptions import MailhostError
from mailhost.proxy import client_address
from webmail import cardquery

if TYPE_CHECKING:
    from mailboxes.models import Contact

DAV = "DAV:"
CARD = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"
ROOT = "/dav/"
BOOK = "/dav/book/"
MAX_CARD = vcard.MAX_CARD
ET.register_namespace("d", DAV)
ET.register_namespace("card", CARD)
ET.register_namespace("cs", CS)


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def _authenticate(request: HttpRequest):
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        address, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    try:
        return services.mailbox_login(
            address=address, password=password, client_ip=client_address(request),
            protocol="carddav",
        )  # fmt: skip
    except MailhostError:
        return None


def _etag(contact: Contact) -> str:
    return f'"{contact.modseq}"'


def _token(mailbox) -> str:
    return f"http://mailhost/sync/{selectors.contacts_highest_modseq(mailbox)}"


def _multistatus(responses: list[ET.Element], token: str | None = None) -> HttpResponse:
    root = ET.Element(_q(DAV, "multistatus"))
    root.extend(responses)
    if token is not None:
        ET.SubElement(root, _q(DAV, "sync-token")).text = token
    body = b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root)
    return HttpResponse(body, status=207, content_type="application/xml; charset=utf-8")


def _response(href: str, found: dict, missing: list[str] = (), status: int = 0) -> ET.Element:
    node = ET.Element(_q(DAV, "response"))
    ET.SubElement(node, _q(DAV, "href")).text = href
    if status:
        ET.SubElement(node, _q(DAV, "status")).text = f"HTTP/1.1 {status} Not Found"
        return node
    if found:
        stat = ET.SubElement(node, _q(DAV, "propstat"))
        prop = ET.SubElement(stat, _q(DAV, "prop"))
        for name, value in found.items():
            element = ET.SubElement(prop, name)
            if isinstance(value, ET.Element):
                element.append(value)
            elif isinstance(value, list):
                element.extend(value)
            elif value is not None:
                element.text = value
        ET.SubElement(stat, _q(DAV, "status")).text = "HTTP/1.1 200 OK"
    if missing:
        stat = ET.SubElement(node, _q(DAV, "propstat"))
        prop = ET.SubElement(stat, _q(DAV, "prop"))
        for name in missing:
            ET.SubElement(prop, name)
        ET.SubElement(stat, _q(DAV, "status")).text = "HTTP/1.1 404 Not Found"
    return node


def _el(ns: str, name: str, *children: ET.Element, text: str | None = None) -> ET.Element:
    element = ET.Element(_q(ns, name))
    element.extend(children)
    if text is not None:
        element.text = text
    return element


def _requested(body: bytes) -> list[str] | None:
    """The property names a PROPFIND asks for; None for allprop (or no body)."""
    if not body.strip():
        return None
    root = ET.fromstring(body)
    prop = root.find(_q(DAV, "prop"))
    return None if prop is None else [child.tag for child in prop]


def _collection_props(mailbox, href: str) -> dict:
    is_book = href == BOOK
    resourcetype = [_el(DAV, "collection")] + ([_el(CARD, "addressbook")] if is_book else [])
    props = {
        _q(DAV, "resourcetype"): resourcetype,
        _q(DAV, "displayname"): "Contacts" if is_book else mailbox.address,
        _q(DAV, "current-user-principal"): _el(DAV, "href", text=ROOT),
        _q(DAV, "principal-URL"): _el(DAV, "href", text=ROOT),
        _q(CARD, "addressbook-home-set"): _el(DAV, "href", text=ROOT),
        _q(DAV, "current-user-privilege-set"): [
            _el(DAV, "privilege", _el(DAV, name)) for name in ("read", "write", "all")
        ],
    }
    if is_book:
        token = _token(mailbox)
        props[_q(DAV, "sync-token")] = token
        props[_q(CS, "getctag")] = token
        props[_q(CARD, "max-resource-size")] = str(MAX_CARD)
        props[_q(DAV, "supported-report-set")] = [
            _el(DAV, "supported-report", _el(DAV, "report", _el(ns, name)))
            for ns, name in (
                (CARD, "addressbook-multiget"),
                (CARD, "addressbook-query"),
                (DAV, "sync-collection"),
            )
        ]
    return props


def _card_props(contact: Contact, with_data: bool) -> dict:
    props = {
        _q(DAV, "getetag"): _etag(contact),
        _q(DAV, "getcontenttype"): "text/vcard; charset=utf-8",
        _q(DAV, "resourcetype"): None,
    }
    if with_data:
        props[_q(CARD, "address-data")] = contact.vcard
    return props


def _pick(props: dict, wanted: list[str] | None) -> tuple[dict, list[str]]:
    if wanted is None:
        return props, []
    return {k: props[k] for k in wanted if k in props}, [k for k in wanted if k not in props]


def _href(contact: Contact) -> str:
    from urllib.parse import quote

    return f"{BOOK}{quote(contact.uid, safe='')}.vcf"


def _uid_from(path: str) -> str | None:
    if not path.startswith(BOOK) or not path.endswith(".vcf"):
        return None
    name = unquote(path[len(BOOK) : -4])
    return name if name and "/" not in name else None


@csrf_exempt
def well_known(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(status=301)
    response["Location"] = ROOT
    return response


@csrf_exempt
def dav(request: HttpRequest, rest: str = "") -> HttpResponse:
    mailbox = _authenticate(request)
    if mailbox is None:
        response = HttpResponse("Sign in with your address and password.", status=401)
        response["WWW-Authenticate"] = 'Basic realm="Mailhost contacts", charset="UTF-8"'
        return response
    path = request.path
    method = request.method
    if method == "OPTIONS":
        response = HttpResponse(status=200)
        response["DAV"] = "1, 3, addressbook"
        response["Allow"] = "OPTIONS, GET, PUT, DELETE, PROPFIND, REPORT"
        return response
    try:
        if method == "PROPFIND":
            return _propfind(request, mailbox, path)
        if method == "REPORT":
            return _report(request, mailbox, path)
    except ET.ParseError:
        return HttpResponse("Bad XML.", status=400)
    uid = _uid_from(path)
    if uid is None:
        return HttpResponse(status=405)
    contact = selectors.contact_get(mailbox, uid)
    if method in ("GET", "HEAD"):
        if contact is None:
            return HttpResponse(status=404)
        response = HttpResponse(contact.vcard, content_type="text/vcard; charset=utf-8")
        response["ETag"] = _etag(contact)
        return response
    if method == "PUT":
        return _put(request, mailbox, uid, contact)
    if method == "DELETE":
        if contact is None:
            return HttpResponse(status=404)
        match = request.META.get("HTTP_IF_MATCH")
        if match and match != _etag(contact):
            return HttpResponse(status=412)
        services.contact_delete(mailbox=mailbox, contact_id=contact.pk)
        return HttpResponse(status=204)
    return HttpResponse(status=405)


def _propfind(request, mailbox, path: str) -> HttpResponse:
    wanted = _requested(request.body)
    depth = request.META.get("HTTP_DEPTH", "1")
    if path in (ROOT, BOOK):
        responses = [_response(path, *_pick(_collection_props(mailbox, path), wanted))]
        if depth != "0":
            if path == ROOT:
                responses.append(_response(BOOK, *_pick(_collection_props(mailbox, BOOK), wanted)))
            else:
                for contact in selectors.contacts_by_uid(mailbox):
                    props = _card_props(contact, with_data=False)
                    responses.append(_response(_href(contact), *_pick(props, wanted)))
        return _multistatus(responses)
    uid = _uid_from(path)
    contact = selectors.contact_get(mailbox, uid) if uid else None
    if contact is None:
        return HttpResponse(status=404)
    return _multistatus([_response(path, *_pick(_card_props(contact, False), wanted))])


def _report(request, mailbox, path: str) -> HttpResponse:
    if path != BOOK:
        return HttpResponse(status=403)
    root = ET.fromstring(request.body)
    prop = root.find(_q(DAV, "prop"))
    wanted = None if prop is None else [child.tag for child in prop]
    with_data = wanted is None or _q(CARD, "address-data") in wanted
    if root.tag == _q(CARD, "addressbook-multiget"):
        responses = []
        for href in root.findall(_q(DAV, "href")):
            uid = _uid_from(unquote(href.text or ""))
            contact = selectors.contact_get(mailbox, uid) if uid else None
            if contact is None:
                responses.append(_response(href.text or "", {}, status=404))
            else:
                props = _card_props(contact, with_data)
                responses.append(_response(href.text, *_pick(props, wanted)))
        return _multistatus(responses)
    if root.tag == _q(CARD, "addressbook-query"):
        return _query(root, mailbox, wanted, with_data)
    if root.tag == _q(DAV, "sync-collection"):
        token_text = (root.findtext(_q(DAV, "sync-token")) or "").strip()
        since = 0
        if token_text:
            tail = token_text.rsplit("/", 1)[-1]
            if not tail.isdigit():
                return _precondition("valid-sync-token")
            since = int(tail)
        responses = [
            _response(_href(c), *_pick(_card_props(c, with_data), wanted))
            for c in selectors.contacts_changed_since(mailbox, since)
        ]
        if since:
            from urllib.parse import quote

            for gone in selectors.contacts_deleted_since(mailbox, since):
                responses.append(_response(f"{BOOK}{quote(gone, safe='')}.vcf", {}, status=404))
        return _multistatus(responses, token=_token(mailbox))
    return HttpResponse(status=403)


def _query(root: ET.Element, mailbox, wanted: list[str] | None, with_data: bool) -> HttpResponse:
    """RFC 6352 8.6: the cards the filter matches, at most CARDDAV:limit of them."""
    try:
        query = cardquery.parse(root.find(_q(CARD, "filter")))
        most = cardquery.limit(root)
    except cardquery.FilterError as exc:
        return _precondition(exc.precondition, ns=CARD)
    found = [c for c in selectors.contacts_by_uid(mailbox) if cardquery.matches(query, c.vcard)]
    responses = [
        _response(_href(c), *_pick(_card_props(c, with_data), wanted)) for c in found[:most]
    ]
    if most is not None and len(found) > most:
        # RFC 6352 8.6.2: a truncated result says so with a 507 for the Request-URI
        node = ET.Element(_q(DAV, "response"))
        ET.SubElement(node, _q(DAV, "href")).text = BOOK
        ET.SubElement(node, _q(DAV, "status")).text = "HTTP/1.1 507 Insufficient Storage"
        node.append(_el(DAV, "error", _el(DAV, "number-of-matches-within-limits")))
        responses.append(node)
    return _multistatus(responses)


def _precondition(name: str, ns: str = DAV) -> HttpResponse:
    root = _el(DAV, "error", _el(ns, name))
    return HttpResponse(
        ET.tostring(root), status=403, content_type="application/xml; charset=utf-8"
    )


def _put(request, mailbox, uid: str, contact: Contact | None) -> HttpResponse:
    if len(request.body) > MAX_CARD:
        return HttpResponse(status=413)
    if request.META.get("HTTP_IF_NONE_MATCH") == "*" and contact is not None:
        return HttpResponse(status=412)
    match = request.META.get("HTTP_IF_MATCH")
    if match and (contact is None or match != _etag(contact)):
        return HttpResponse(status=412)
    try:
        cards = vcard.parse(request.body.decode("utf-8", "replace"))
    except vcard.VCardError as exc:
        return HttpResponse(f"Not a vCard: {exc}.", status=415)
    if len(cards) != 1:
        return HttpResponse("One card per resource.", status=415)
    card = cards[0]
    card.uid = uid  # the resource name is the card's identity here
    services.contacts_put(mailbox=mailbox, cards=[card])
    stored = selectors.contact_get(mailbox, uid)
    response = HttpResponse(status=201 if contact is None else 204)
    response["ETag"] = _etag(stored)
    return response
