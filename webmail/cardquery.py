"""CardDAV addressbook-query filters (RFC 6352 8.6, 10.5): the request's CARDDAV:filter read
into values, and whether a card matches it. No I/O: an XML element in, a Filter out; a card's
text in, True or False out.

Matching follows the RFC's definitions: a filter with no prop-filter matches every card
(10.5); a prop-filter matches when its property exists (empty filter), when it does not
(is-not-defined), or when any (test="anyof", the default) or all (test="allof") of its
text-matches and param-filters match (10.5.1); a text-match matches when any instance of the
property (or parameter) holds the text, or, with negate-condition="yes", when one does not
(10.5.4). Collations (RFC 4790): i;unicode-casemap (the default, RFC 5051), i;ascii-casemap
and i;octet; any other is refused with the CARDDAV:supported-collation precondition.
"""

from __future__ import annotations

import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from mailboxes import vcard

CARD = "urn:ietf:params:xml:ns:carddav"
COLLATIONS = ("i;unicode-casemap", "i;ascii-casemap", "i;octet")
MATCH_TYPES = ("equals", "contains", "starts-with", "ends-with")


class FilterError(ValueError):
    """The filter cannot be served; `precondition` names the CARDDAV element to report."""

    def __init__(self, precondition: str, detail: str):
        super().__init__(detail)
        self.precondition = precondition


@dataclass(frozen=True)
class TextMatch:
    text: str
    collation: str = "i;unicode-casemap"
    match_type: str = "contains"
    negate: bool = False


@dataclass(frozen=True)
class ParamFilter:
    name: str
    is_not_defined: bool = False
    text_match: TextMatch | None = None


@dataclass(frozen=True)
class PropFilter:
    name: str
    is_not_defined: bool = False
    all_of: bool = False
    text_matches: tuple[TextMatch, ...] = ()
    param_filters: tuple[ParamFilter, ...] = ()


@dataclass(frozen=True)
class Filter:
    prop_filters: tuple[PropFilter, ...] = ()
    all_of: bool = False


def _q(name: str) -> str:
    return f"{{{CARD}}}{name}"


def _test(element: ET.Element) -> bool:
    """True for allof; anyof is the default (RFC 6352 10.5, 10.5.1)."""
    test = element.get("test", "anyof")
    if test not in ("anyof", "allof"):
        raise FilterError("supported-filter", f"test={test!r}")
    return test == "allof"


def _text_match(element: ET.Element) -> TextMatch:
    collation = element.get("collation", "i;unicode-casemap")
    if collation not in COLLATIONS:
        raise FilterError("supported-collation", f"collation {collation!r}")
    match_type = element.get("match-type", "contains")
    if match_type not in MATCH_TYPES:
        raise FilterError("supported-filter", f"match-type {match_type!r}")
    negate = element.get("negate-condition", "no")
    if negate not in ("yes", "no"):
        raise FilterError("supported-filter", f"negate-condition {negate!r}")
    return TextMatch(element.text or "", collation, match_type, negate == "yes")


def _param_filter(element: ET.Element) -> ParamFilter:
    name = (element.get("name") or "").strip().upper()
    if not name:
        raise FilterError("supported-filter", "a param-filter without a name")
    match = element.find(_q("text-match"))
    return ParamFilter(
        name,
        is_not_defined=element.find(_q("is-not-defined")) is not None,
        text_match=None if match is None else _text_match(match),
    )


def _prop_filter(element: ET.Element) -> PropFilter:
    name = (element.get("name") or "").strip().upper()
    if not name:
        raise FilterError("supported-filter", "a prop-filter without a name")
    return PropFilter(
        name,
        is_not_defined=element.find(_q("is-not-defined")) is not None,
        all_of=_test(element),
        text_matches=tuple(_text_match(e) for e in element.findall(_q("text-match"))),
        param_filters=tuple(_param_filter(e) for e in element.findall(_q("param-filter"))),
    )


def parse(element: ET.Element | None) -> Filter:
    """The CARDDAV:filter element of a query (None: no filter, every card)."""
    if element is None:
        return Filter()
    return Filter(
        prop_filters=tuple(_prop_filter(e) for e in element.findall(_q("prop-filter"))),
        all_of=_test(element),
    )


def limit(query: ET.Element) -> int | None:
    """CARDDAV:limit/nresults (RFC 6352 8.6.1), None when absent."""
    text = query.findtext(f"{_q('limit')}/{_q('nresults')}")
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise FilterError("supported-filter", f"nresults {text!r}") from None
    if value < 0:
        raise FilterError("supported-filter", f"nresults {text!r}")
    return value


def _fold(text: str, collation: str) -> str:
    if collation == "i;octet":
        return text
    if collation == "i;ascii-casemap":
        return "".join(c.lower() if c.isascii() else c for c in text)
    # RFC 5051: titlecase each character, then NFKD; casefold is its near equivalent
    return unicodedata.normalize("NFKD", text.casefold())


def _text_matches(match: TextMatch, value: str) -> bool:
    haystack, needle = _fold(value, match.collation), _fold(match.text, match.collation)
    if match.match_type == "equals":
        found = haystack == needle
    elif match.match_type == "starts-with":
        found = haystack.startswith(needle)
    elif match.match_type == "ends-with":
        found = haystack.endswith(needle)
    else:
        found = needle in haystack
    return found != match.negate


def _any_instance(match: TextMatch, values: list[str]) -> bool:
    return any(_text_matches(match, value) for value in values)


def _param_matches(param: ParamFilter, props: list[vcard.Property]) -> bool:
    # RFC 6352 10.5.2: the parameter of any instance of the property
    values = [v for prop in props for v in prop.params.get(param.name, [])]
    present = any(param.name in prop.params for prop in props)
    if param.is_not_defined:
        return not present
    if param.text_match is None:
        return present
    return _any_instance(param.text_match, values)


def _prop_matches(test: PropFilter, props: list[vcard.Property]) -> bool:
    mine = [p for p in props if p.name == test.name]
    if test.is_not_defined:
        return not mine
    if not test.text_matches and not test.param_filters:
        return bool(mine)
    if not mine:
        return False
    values = [p.value for p in mine]
    results = [_any_instance(m, values) for m in test.text_matches]
    results += [_param_matches(f, mine) for f in test.param_filters]
    return all(results) if test.all_of else any(results)


def matches(query: Filter, card_text: str) -> bool:
    if not query.prop_filters:
        return True
    props = vcard.properties(card_text)
    results = (_prop_matches(test, props) for test in query.prop_filters)
    return all(results) if query.all_of else any(results)
