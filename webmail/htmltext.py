"""HTML read in linear time: a tokenizer, plain text for replies and search, and a normalized
copy of a body for the sanitizer.

Mail HTML comes from strangers, so nothing here may take more than linear time. The tokenizer
follows the HTML standard's tokenization (WHATWG HTML 13.2.5) where text extraction needs it:
text, start and end tags with attributes, comments, bogus comments and doctypes, and the
raw-text elements whose content is not markup (script, style...). It only moves forward: each
step either consumes input or ends, every regular expression is anchored at the current
position and possessive (no backtracking), and the end of a comment or raw-text element is
found with one forward search. An unterminated tag, comment or quoted attribute value runs to
the end of the input, as in the standard.

Neither ready-made parser qualifies: Python 3.11's html.parser is quadratic on a body of
repeated "<script" (CVE-2025-6069; 112 KB takes seconds), and html5ever's tree builder (inside
nh3) is quadratic in nesting depth (100 KB of "<div>" takes 2 s).
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterator
from dataclasses import dataclass

# Elements whose content is not markup (13.2.5.2-13.2.5.5); all but textarea and xmp are
# dropped from text and from what the sanitizer gets. plaintext runs to the end of the input.
RAW_TEXT = frozenset(
    {"script", "style", "xmp", "iframe", "noembed", "noframes", "noscript", "title", "textarea"}
)
DROPPED_CONTENT = RAW_TEXT - {"textarea", "xmp"}
# Old preformatted elements, read as <pre> (their content is plain text).
_AS_PRE = {"xmp": "pre", "listing": "pre", "plaintext": "pre"}
# Elements that start and end a line of text.
BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "center", "dd", "details", "dialog", "dir",
        "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2",
        "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "menu", "nav", "ol", "p", "pre",
        "section", "summary", "table", "tbody", "tfoot", "thead", "tr", "ul", "caption",
    }
)  # fmt: skip
CELLS = frozenset({"td", "th"})
VOID = frozenset(
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr", "param", "keygen",
    }
)  # fmt: skip

# One tag after its name, to the closing ">" (13.2.5.32-13.2.5.40): a quote opens a value only
# after "=", and an unterminated one runs to the end of the input.
_TAG_REST = (
    r"""(?:[^>"'=]++|=[\t\n\f\r ]*+(?:"[^"]*+(?:"|\Z)|'[^']*+(?:'|\Z)|[^\t\n\f\r >]*+)|["'])*+"""
)
_START_TAG = re.compile(rf"<([A-Za-z][^\t\n\f\r />]*+)({_TAG_REST})>")
_END_TAG = re.compile(rf"</([A-Za-z][^\t\n\f\r />]*+){_TAG_REST}>")
_ATTRIBUTE_GAP = re.compile(r"[\t\n\f\r /]*+")
_ATTRIBUTE = re.compile(
    r"""(?P<name>[^\t\n\f\r />][^\t\n\f\r />=]*+)"""
    r"""(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+"""
    r"""(?:"(?P<dq>[^"]*+)"|'(?P<sq>[^']*+)'|(?P<uq>[^\t\n\f\r >]*+)))?+"""
)
_SELF_CLOSING = re.compile(r"/[\t\n\f\r ]*+$")
_WHITESPACE = re.compile(r"[\t\n\f\r ]+")
_RAW_END: dict[str, re.Pattern] = {}


@dataclass(frozen=True, slots=True)
class Text:
    data: str  # character references already decoded


@dataclass(frozen=True, slots=True)
class StartTag:
    name: str  # lower case
    source: str = ""  # the attributes as written, parsed on demand (text needs none)

    @property
    def self_closing(self) -> bool:
        return _SELF_CLOSING.search(self.source) is not None

    def attributes(self) -> list[tuple[str, str]]:
        """(name, value) pairs, names lower case, values decoded; the first of repeated
        names counts (13.2.5.33)."""
        found: dict[str, str] = {}
        source, pos = self.source, 0
        # A loop of anchored matches, not finditer: finditer retries a failed match at every
        # following position, rescanning a run of white space once per character.
        while pos < len(source):
            pos = _ATTRIBUTE_GAP.match(source, pos).end()
            match = _ATTRIBUTE.match(source, pos)
            if match is None:
                pos += 1
                continue
            pos = match.end()
            name = match.group("name").lower()
            if name not in found:
                value = match.group("dq")
                if value is None:
                    value = match.group("sq")
                if value is None:
                    value = match.group("uq") or ""
                found[name] = html_lib.unescape(value)
        return list(found.items())


@dataclass(frozen=True, slots=True)
class EndTag:
    name: str


Token = Text | StartTag | EndTag


def _raw_end(name: str) -> re.Pattern:
    pattern = _RAW_END.get(name)
    if pattern is None:
        pattern = _RAW_END[name] = re.compile(rf"</{name}[\t\n\f\r />]", re.I)
    return pattern


def tokens(html: str) -> Iterator[Token]:
    """The tokens of an HTML document; comments and doctypes are skipped."""
    pos, end = 0, len(html)
    find, unescape = html.find, html_lib.unescape
    while pos < end:
        lt = find("<", pos)
        if lt < 0:
            yield Text(unescape(html[pos:]))
            return
        if lt > pos:
            yield Text(unescape(html[pos:lt]))
        pos = lt
        following = html[pos + 1 : pos + 2]
        if following.isascii() and following.isalpha():
            tag = _START_TAG.match(html, pos)
            if tag is None:
                return  # end of input inside a tag: the tag is dropped (13.2.5.32)
            name = tag.group(1).lower()
            pos = tag.end()
            yield StartTag(name, tag.group(2))
            if name == "plaintext":
                yield Text(html[pos:])
                return
            if name in RAW_TEXT:
                close = _raw_end(name).search(html, pos)
                stop = end if close is None else close.start()
                # title and textarea are RCDATA: character references count (13.2.5.2).
                text = html[pos:stop]
                yield Text(unescape(text) if name in {"title", "textarea"} else text)
                pos = stop
        elif following == "/":
            tag = _END_TAG.match(html, pos)
            if tag is not None:
                yield EndTag(tag.group(1).lower())
                pos = tag.end()
                continue
            if html[pos + 2 : pos + 3].isascii() and html[pos + 2 : pos + 3].isalpha():
                return  # end of input inside an end tag
            close = find(">", pos + 2)  # "</>" is dropped, "</ x>" a bogus comment
            pos = end if close < 0 else close + 1
        elif following == "!" and html.startswith("<!--", pos):
            # 13.2.5.43: "<!-->" and "<!--->" are whole (empty) comments.
            if html.startswith(">", pos + 4) or html.startswith("->", pos + 4):
                pos = find(">", pos + 4) + 1
                continue
            close = find("-->", pos + 4)
            pos = end if close < 0 else close + 3
        elif following in ("!", "?"):  # doctype, CDATA, processing instruction: bogus comment
            close = find(">", pos + 2)
            pos = end if close < 0 else close + 1
        else:  # a "<" that starts no tag is text
            yield Text("<")
            pos += 1


def to_text(html: str, *, limit: int) -> str:
    """A readable plain-text rendering of the first `limit` characters of an HTML body:
    script and style content dropped, a line per block element and <br>, character
    references decoded, runs of white space as one space (kept in <pre>)."""
    out: list[str] = []
    at_line_start = True
    pre = 0
    skip_until: str | None = None  # inside an element whose content is not text
    for token in tokens(html[:limit]):
        if type(token) is Text:
            if skip_until is not None:
                continue
            data = token.data
            if pre:
                out.append(data.replace("\r\n", "\n"))
            else:
                data = _WHITESPACE.sub(" ", data)
                if at_line_start:
                    data = data.lstrip(" ")
                if not data:
                    continue
                out.append(data)
            at_line_start = out[-1].endswith("\n")
            continue
        name = token.name
        if type(token) is StartTag:
            if name in DROPPED_CONTENT:
                skip_until = name
                continue
            name = _AS_PRE.get(name, name)
            if name == "pre":
                pre += 1
        elif name == skip_until:
            skip_until = None
            continue
        elif _AS_PRE.get(name, name) == "pre" and pre:
            pre -= 1
        if name == "br":
            out.append("\n")
            at_line_start = True
        elif name in BLOCKS and not at_line_start:
            out.append("\n")
            at_line_start = True
        elif name in CELLS and type(token) is StartTag and not at_line_start:
            out.append(" ")
    lines = [" ".join(line.split()) for line in "".join(out).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# Implied end tags (13.2.6.4.7), the few that keep ordinary mail's nesting shallow: a start tag
# in the key closes an open element of the listed names at the top of the stack.
_CLOSED_BY = {
    **{name: ("p",) for name in BLOCKS},
    "li": ("li", "p"),
    "dt": ("dt", "dd", "p"),
    "dd": ("dt", "dd", "p"),
    "td": ("td", "th"),
    "th": ("td", "th"),
    "tr": ("td", "th", "tr"),
    "option": ("option",),
}
# html5ever's tree builder slows down on "&" in a long text node; a <wbr> every this many keeps
# each node short (it renders as nothing).
_AMPERSANDS_PER_NODE = 64


def normalized(html: str, *, limit: int, max_depth: int) -> str:
    """The first `limit` characters of an HTML body re-serialized for the sanitizer: tags with
    quoted attributes, text escaped, comments gone, and elements nested at most `max_depth`
    deep (deeper start tags are dropped, their text kept), as browsers cap the depth of the
    tree (Chromium at 512). The sanitizer's parser is quadratic in depth; this is linear."""
    out: list[str] = []
    stack: list[str] = []
    skip_until: str | None = None  # inside an element whose content is dropped
    for token in tokens(html[:limit]):
        kind = type(token)
        if skip_until is not None:
            if kind is EndTag and token.name == skip_until:
                skip_until = None
            continue
        if kind is Text:
            escaped = html_lib.escape(token.data, quote=False)
            if escaped.count("&") > _AMPERSANDS_PER_NODE:
                pieces = escaped.split("&")
                groups = [
                    "&".join(pieces[i : i + _AMPERSANDS_PER_NODE])
                    for i in range(0, len(pieces), _AMPERSANDS_PER_NODE)
                ]
                escaped = "<wbr>&".join(groups)
            out.append(escaped)
        elif kind is StartTag:
            if token.name in DROPPED_CONTENT:
                skip_until = token.name
                continue
            name = _AS_PRE.get(token.name, token.name)
            closes = _CLOSED_BY.get(name)
            while closes and stack and stack[-1] in closes:
                out.append(f"</{stack.pop()}>")
            if name not in VOID:
                if len(stack) >= max_depth:
                    continue
                stack.append(name)
            attributes = "".join(
                f' {key}="{html_lib.escape(value)}"'
                for key, value in token.attributes()
                if not any(c in key for c in "\"'<")
            )
            out.append(f"<{name}{attributes}>")
        elif _AS_PRE.get(token.name, token.name) in stack:
            closing = _AS_PRE.get(token.name, token.name)
            while stack:
                name = stack.pop()
                out.append(f"</{name}>")
                if name == closing:
                    break
    return "".join(out)
