"""Every webmail page in German, with Django's test client: no English UI string remains.

The English strings are read from the sources, not listed by hand: every string the templates
mark for translation or still write literally, and every string the webmail's Python code hands
to gettext. A German page is walked (each link the pages offer, plus the forms whose answers
are flash messages and form errors) and its visible text and labels are compared with them,
so a new string that is not translated fails here."""

from __future__ import annotations

import ast
import html
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.utils.translation import trans_real

from mailboxes import services
from tests.webmail.conftest import deliver, folder, make_raw
from tests.webmail.test_junk import HOST, spoofed_raw
from webmail import search as search_module

pytestmark = pytest.mark.django_db

ROOT = Path(settings.BASE_DIR)
TEMPLATES = ROOT / "templates" / "webmail"
# Text the templates write literally on purpose: names, keys and protocol words that are the
# same in every language.
UNTRANSLATED = {
    "Mailhost",
    "· Mailhost",
    "Enter",
    "Cc",
    "Bcc",
    "SSL/TLS",
    "STARTTLS",
    "login-page",
    "name@example.org",
    "you@elsewhere.example",
}
# Attributes a reader sees or hears.
SHOWN_ATTRIBUTES = ("title", "placeholder", "aria-label", "alt", "data-confirm")
GETTEXT_NAMES = {"gettext", "_", "gettext_lazy", "ngettext", "ngettext_lazy", "pgettext"}

_TEMPLATE_TAG = re.compile(r"{%.*?%}|{{.*?}}|{#.*?#}", re.S)
_TRANSLATE = re.compile(r"""{%\s*translate\s+(?:"([^"]*)"|'([^']*)')""")
_BLOCK = re.compile(r"{%\s*blocktranslate\b([^%]*)%}(.*?){%\s*endblocktranslate\s*%}", re.S)
_PLACEHOLDER = re.compile(r"{{\s*\w+\s*}}|%\(\w+\)[sd]")


def _literal_texts(source: str) -> list[str]:
    """What a template writes outside translation tags: text between elements, and the
    values of attributes a reader sees."""
    source = _BLOCK.sub(" ", source)
    source = re.sub(r"<(script|style)\b.*?</\1>", " ", source, flags=re.S)
    source = _TEMPLATE_TAG.sub("", source)
    found = []
    for name in SHOWN_ATTRIBUTES:
        found += re.findall(rf'\b{name}="([^"]*)"', source)
    found += re.sub(r"<[^>]*>", "\n", source).split("\n")
    texts = (html.unescape(text).strip() for text in found)
    return [text for text in texts if re.search(r"[A-Za-z]{2}", text)]


def template_strings() -> tuple[set[str], set[str]]:
    """(strings marked for translation, strings written literally) of the webmail templates."""
    marked: set[str] = set()
    literal: set[str] = set()
    for path in TEMPLATES.glob("*.html"):
        source = path.read_text()
        marked |= {a or b for a, b in _TRANSLATE.findall(source)}
        for options, body in _BLOCK.findall(source):
            for part in body.split("{% plural %}"):
                if "trimmed" in options:
                    part = " ".join(part.split())
                marked.add(part)
        literal |= set(_literal_texts(source))
    return marked, literal


def python_strings() -> set[str]:
    """The string literals the webmail's Python code (and delivery.inbound's words for a
    message's authentication, which the junk explanation shows) hands to gettext."""
    found: set[str] = set()
    sources = [*(ROOT / "webmail").rglob("*.py"), ROOT / "delivery" / "inbound" / "results.py"]
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in GETTEXT_NAMES:
                found |= {
                    arg.value
                    for arg in node.args
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                }
    return found


def _fragments(text: str) -> list[str]:
    """A string's pieces as a page shows them: split at its markup, spaces collapsed."""
    return [" ".join(p.split()) for p in re.split(r"<[^>]*>", text) if p.strip()]


def _pattern(fragment: str) -> re.Pattern | None:
    """A fragment as a pattern for a whole text node (placeholders match anything), or None
    when it is no words of its own."""
    words = _PLACEHOLDER.sub("", fragment)
    if not re.search(r"[A-Za-z]{2}", words) or fragment in UNTRANSLATED:
        return None
    parts = _PLACEHOLDER.split(fragment)
    return re.compile(".+".join(re.escape(p) for p in parts), re.S)


def english_patterns() -> list[re.Pattern]:
    """Every English UI string of the webmail, less those the German catalogue writes the
    same way (a string missing from the catalogue stays in: it is shown in English)."""
    marked, literal = template_strings()
    strings = marked | literal | python_strings()
    catalogue = trans_real.translation("de")._catalog
    german = {fragment for _key, text in catalogue.items() for fragment in _fragments(text)}
    patterns = {}
    for text in strings:
        for fragment in _fragments(text):
            pattern = _pattern(fragment)
            if pattern is not None and not any(pattern.fullmatch(g) for g in german):
                patterns[pattern.pattern] = pattern
    return list(patterns.values())


class _Shown(HTMLParser):
    """A page's text nodes and shown attribute values (message bodies left out: mail is
    whatever language its sender wrote)."""

    SKIP = {"script", "style", "pre", "textarea", "iframe"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skipping += 1
        for name, value in attrs:
            if name in SHOWN_ATTRIBUTES and value:
                self.texts.append(" ".join(value.split()))

    def handle_endtag(self, tag):
        if tag in self.SKIP and self._skipping:
            self._skipping -= 1

    def handle_data(self, data):
        if not self._skipping and data.strip():
            self.texts.append(" ".join(data.split()))


def shown_texts(page: str) -> list[str]:
    parser = _Shown()
    parser.feed(page)
    return parser.texts


class Walk:
    """A German reader's pages, each checked against the English strings."""

    def __init__(self, client, patterns, data: set[str]) -> None:
        self.client = client
        self.patterns = patterns
        self.data = data  # the reader's own words on the pages: folder names, subjects
        self.english: dict[str, set[str]] = {}
        self.seen: set[str] = set()

    def check(self, url: str, response) -> str:
        assert response.status_code in (200, 400, 401), (url, response.status_code)
        assert response["Content-Language"] == "de", url
        page = response.content.decode()
        for text in shown_texts(page):
            if text in self.data:
                continue
            # A phrase may be shown as a sentence of its own (webmail.junk._sentence).
            phrase = (text[:1].lower() + text[1:]).removesuffix(".")
            if any(p.fullmatch(text) or p.fullmatch(phrase) for p in self.patterns):
                self.english.setdefault(text, set()).add(url)
        return page

    def get(self, url: str) -> str:
        self.seen.add(url)
        return self.check(url, self.client.get(url, follow=True))

    def post(self, url: str, data: dict) -> str:
        return self.check(f"POST {url}", self.client.post(url, data, follow=True))

    def crawl(self, start: str = "/", limit: int = 120) -> None:
        """Each page the pages link to, once (downloads, raw bytes and sign-out left out)."""
        queue = [start]
        while queue and len(self.seen) < limit:
            url = queue.pop(0)
            if url in self.seen:
                continue
            page = self.get(url)
            for href in re.findall(r'href="([^"]+)"', page):
                href = href.replace("&amp;", "&")
                parts = urlsplit(href)
                if parts.scheme or parts.netloc or not parts.path.startswith("/"):
                    continue
                if re.search(r"/(raw|part|frame|static|api)/|\.vcf$|download=|/logout/", href):
                    continue
                if href not in self.seen:
                    queue.append(href)


def test_the_english_strings_are_found_in_the_sources():
    patterns = {p.pattern for p in english_patterns()}
    # From a template's {% translate %}, a {% blocktranslate %} and a view's gettext...
    assert re.escape("Stop sharing") in patterns
    assert any(p.startswith(re.escape("Body text was searched in the newest")) for p in patterns)
    assert any(p.startswith(re.escape("Rule “")) for p in patterns)
    # ...but not what German writes the same way.
    assert re.escape("(optional)") not in patterns


def test_templates_write_no_english_outside_translation_tags():
    _marked, literal = template_strings()
    assert literal <= UNTRANSLATED, sorted(literal - UNTRANSLATED)


def test_views_hand_no_literal_english_to_the_reader():
    """Flash messages and form errors go through gettext: a literal (or f-string) given to
    messages.<level> or put in a form's errors is English whatever the reader chose."""
    offending = []
    for path in sorted((ROOT / "webmail").rglob("*.py")):
        source = path.read_text()
        for match in re.finditer(
            r"flash\.\w+\(\s*request,\s*f?[\"']|errors\[\"\w+\"\]\s*=\s*f?[\"']"
            r"|context\[\"error\"\]\s*=\s*\(?\s*f?[\"']",
            source,
        ):
            line = source[: match.start()].count("\n") + 1
            offending.append(f"{path.relative_to(ROOT)}:{line}")
    assert offending == []


def test_every_page_in_german_has_no_english_left(client, alice, bob, monkeypatch, settings):
    settings.MAILHOST_HOSTNAME = HOST
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "de"
    monkeypatch.setattr(search_module, "BODY_SCAN_LIMIT", 1)
    # Mail of every kind a page explains: a thread with an attachment, HTML with a remote
    # image, spam with a verdict, and junk without one.
    deliver(make_raw(subject="Grüße", message_id="<a@remote.example>", text="Hallo\n"))
    deliver(
        make_raw(
            subject="Re: Grüße",
            in_reply_to="<a@remote.example>",
            references="<a@remote.example>",
            attachments=(("plan.txt", "text/plain", b"Plan\n"),),
        )
    )
    deliver(make_raw(subject="Bilder", html='<p>Bild <img src="https://img.example/a.png"></p>'))
    deliver(spoofed_raw(subject="Konto gesperrt"))
    deliver(make_raw(subject="Werbung", sender="Dora <dora@werbung.example>"))
    inbox = folder(alice, "INBOX")
    services.sievescript_put(mailbox=alice, name="meins", text="keep;\n", activate=True)
    services.sender_list_add(mailbox=alice, pattern="@block.example", action="block")

    client.post("/login/", {"address": alice.address, "password": "falsch"})
    walk = Walk(client, english_patterns(), {f.name for f in alice.folders.all()})
    walk.get("/login/")
    walk.post("/login/", {"address": "", "password": ""})
    walk.post("/login/", {"address": alice.address, "password": "falsch"})
    walk.post("/login/", {"address": alice.address, "password": "secret"})
    walk.data |= {
        "Grüße",
        "Re: Grüße",
        "Bilder",
        "Konto gesperrt",
        "Werbung",
        "meins",
        "webmail",
    }

    # Forms whose answers are flash messages and form errors.
    walk.post(f"/f/{inbox.pk}/bulk/", {"action": "junk", "uid": ["5"]})
    walk.post(f"/f/{inbox.pk}/bulk/", {"action": "flag", "uid": ["1", "2"]})
    walk.post(f"/f/{inbox.pk}/bulk/", {"action": "read", "uid": ["1"]})
    walk.post(f"/f/{inbox.pk}/bulk/", {"action": "archive", "uid": ["3"]})
    walk.post(f"/f/{inbox.pk}/bulk/", {"action": "move", "uid": ["1"], "target": ""})
    walk.post(f"/f/{inbox.pk}/bulk/", {"action": "empty"})
    walk.post(f"/f/{inbox.pk}/bulk/", {"action": "flag"})
    walk.post("/folders/create/", {"name": "Projekte"})
    walk.post("/folders/create/", {"name": "Projekte"})
    projects = folder(alice, "Projekte")
    walk.post(f"/folders/{projects.pk}/rename/", {"name": "Vorhaben"})
    walk.post(f"/folders/{folder(alice, 'Sent').pk}/delete/", {})
    archive = folder(alice, "Archive")
    sharing = f"/folders/{archive.pk}/sharing/"
    walk.post(sharing, {"who": "address", "address": bob.address, "access": "read"})
    walk.post(sharing, {"who": "domain", "access": "write"})
    walk.post(sharing, {"who": "address", "address": "niemand@example.org", "access": "read"})
    walk.post("/settings/senders/add/", {"pattern": "@gut.example", "action": "allow"})
    walk.post("/settings/senders/add/", {"pattern": "kein muster", "action": "block"})
    walk.post("/settings/filters/add/", {"match": "all", "field_0": "from", "value_0": ""})
    walk.post(
        "/settings/filters/add/",
        {
            "name": "Rundbriefe",
            "match": "any",
            "field_0": "from",
            "operator_0": "contains",
            "value_0": "news@",
            "field_1": "size",
            "operator_1": "over",
            "value_1": "2M",
            "action_0": "move",
            "folder_0": "Archive",
            "action_1": "flag",
        },
    )
    walk.data.add("Rundbriefe")
    walk.post("/settings/filters/add/", {"match": "all", "field_0": "size", "value_0": "viel"})
    walk.post("/settings/vacation/", {"enabled": "on", "text": "Bin weg.", "start": "morgen"})
    walk.post("/settings/vacation/", {"enabled": "on", "subject": "Urlaub", "text": "Bin weg."})
    walk.post("/settings/forwarding/", {"address": "kaputt@"})
    walk.post("/settings/forwarding/", {"address": "ich@anderswo.example"})
    walk.post("/settings/forwarding/", {"address": ""})
    walk.post("/contacts/", {"name": "", "email": "kaputt@@"})
    walk.post("/contacts/", {"name": "Erika", "email": "erika@example.org"})
    walk.data |= {"Erika", "E"}
    walk.post("/compose/", {"to": "kaputt@@", "subject": "x", "body": "y", "action": "send"})
    walk.post(
        "/compose/",
        {
            "to": "niemand@example.org, dora@remote.example",
            "subject": "Fern",
            "body": "Hallo",
            "action": "send",
        },
    )
    walk.data.add("Fern")
    walk.post("/compose/", {"to": "", "subject": "Entwurf", "body": "y", "action": "save"})
    walk.data.add("Entwurf")
    walk.post("/settings/account/password/", {"current": "x", "new": "a", "new2": "b"})
    # Capped body search, then every page the pages link to.
    walk.get("/search/?q=Hallo&in=any")
    walk.get("/search/?q=Hallo&in=body")
    walk.data |= {f.name for f in alice.folders.all()}
    walk.crawl()
    # The pages this test means to reach were reached.
    reached = " ".join(walk.seen)
    for path in ("/settings/filters/", "/settings/vacation/", sharing, "/compose/", "/contacts/"):
        assert path in reached, path
    assert len(walk.seen) > 25, sorted(walk.seen)
    assert walk.english == {}
