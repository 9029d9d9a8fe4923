""" "Why is this junk?": the verdict stored in a message's header, in plain words.

Reads what the receiving MTA put at the top of the stored message: our Authentication-Results
field (RFC 8601, authserv-id MAILHOST_HOSTNAME; any claiming our id from outside is removed on
receipt) and the X-Spam / X-Spam-Score fields of the spam verdict. Sans-IO: header bytes in,
an Explanation out; the view decides what to show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32

from mailboxes import headers

BAD, GOOD, INFO = "bad", "good", "info"


@dataclass(frozen=True)
class ResultInfo:
    """One resinfo of an Authentication-Results field (RFC 8601 2.2)."""

    method: str  # spf, dkim, dmarc, arc, ... (lower case, version dropped)
    result: str  # pass, fail, ... (lower case)
    reason: str = ""
    props: dict[str, str] = field(default_factory=dict)  # "smtp.mailfrom" -> value
    comment: str = ""  # the comments in the resinfo, joined (e.g. "p=reject dis=none")


@dataclass(frozen=True)
class Finding:
    tone: str  # BAD, GOOD or INFO
    words: str
    code: str = ""
    score: float | None = None


@dataclass(frozen=True)
class Explanation:
    spam: bool | None  # X-Spam: Yes/No; None when the message carries no verdict
    score: float | None
    findings: list[Finding]

    @property
    def bad(self) -> list[Finding]:
        return [f for f in self.findings if f.tone == BAD]


# --- RFC 8601 parsing ------------------------------------------------------------------------


def _tokens(value: str) -> list[tuple[str, str]]:
    """Split a field value into ("word", text), ("sep", ";" or "="), ("comment", text);
    quoted strings become words; nested comments (RFC 5322 3.2.2) are kept whole."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c.isspace():
            i += 1
        elif c == "(":
            depth, j, text = 1, i + 1, []
            while j < n and depth:
                if value[j] == "\\" and j + 1 < n:
                    text.append(value[j + 1])
                    j += 2
                    continue
                if value[j] == "(":
                    depth += 1
                elif value[j] == ")":
                    depth -= 1
                    if not depth:
                        break
                text.append(value[j])
                j += 1
            out.append(("comment", "".join(text).strip()))
            i = j + 1
        elif c == '"':
            j, text = i + 1, []
            while j < n and value[j] != '"':
                if value[j] == "\\" and j + 1 < n:
                    j += 1
                text.append(value[j])
                j += 1
            out.append(("word", "".join(text)))
            i = j + 1
        elif c in ";=":
            out.append(("sep", c))
            i += 1
        else:
            j = i
            while j < n and not value[j].isspace() and value[j] not in ';=()"':
                j += 1
            out.append(("word", value[i:j]))
            i = j
    return out


def parse_authentication_results(value: str) -> tuple[str, list[ResultInfo]]:
    """(authserv-id, resinfos) of one Authentication-Results value; ("", []) if unreadable."""
    clauses: list[list[tuple[str, str]]] = [[]]
    for token in _tokens(value):
        if token == ("sep", ";"):
            clauses.append([])
        else:
            clauses[-1].append(token)
    head = [t for t in clauses[0] if t[0] == "word"]
    if not head:
        return "", []
    authserv_id = head[0][1].lower()
    results = []
    for clause in clauses[1:]:
        info = _resinfo(clause)
        if info is not None:
            results.append(info)
    return authserv_id, results


def _resinfo(clause: list[tuple[str, str]]) -> ResultInfo | None:
    comments = [text for kind, text in clause if kind == "comment"]
    items = [t for t in clause if t[0] != "comment"]
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(items):
        if (
            i + 2 < len(items)
            and items[i][0] == "word"
            and items[i + 1] == ("sep", "=")
            and items[i + 2][0] == "word"
        ):
            pairs.append((items[i][1], items[i + 2][1]))
            i += 3
        else:
            i += 1
    if not pairs or pairs[0][0].lower() == "none":
        return None
    method = pairs[0][0].split("/")[0].lower()
    result = pairs[0][1].lower()
    reason = ""
    props: dict[str, str] = {}
    for key, val in pairs[1:]:
        if key.lower() == "reason":
            reason = val
        elif "." in key:
            props.setdefault(key.lower(), val)
    return ResultInfo(method, result, reason, props, " ".join(comments))


# --- X-Spam-Score ---------------------------------------------------------------------------

_NUMBER = r"[-+]?\d+(?:\.\d+)?"
_SCORE_HEAD = re.compile(rf"^\s*({_NUMBER})")
_ITEM = re.compile(rf"([A-Za-z][A-Za-z0-9_.-]*)\s*(?:=|\(|:)\s*({_NUMBER})\)?")


def parse_spam_score(value: str) -> tuple[float | None, list[tuple[str, float]]]:
    """The total and the (code, score) items of an X-Spam-Score value, as written by
    delivery.spam (`7.3 (GTUBE=1000.0, ...)`; `CODE(1.0)` and `CODE:1.0` are read too)."""
    head = _SCORE_HEAD.match(value)
    total = float(head.group(1)) if head else None
    rest = value[head.end() :] if head else value
    return total, [(code, float(score)) for code, score in _ITEM.findall(rest)]


# --- Plain words ----------------------------------------------------------------------------


def _domain_of(value: str) -> str:
    return value.rpartition("@")[2].strip("<>").lower() if value else ""


def _policy(info: ResultInfo) -> str:
    for source in (info.props.get("policy.dmarc", ""), info.comment):
        match = re.search(r"\bp=([a-z]+)", source) if "p=" in source else None
        if match:
            return match.group(1).lower()
        if source in {"reject", "quarantine", "none"}:
            return source
    return ""


def _spf_words(info: ResultInfo) -> Finding | None:
    mailfrom = info.props.get("smtp.mailfrom", "")
    domain = _domain_of(mailfrom) or _domain_of(info.props.get("smtp.helo", "")) or "the sender"
    words = {
        "pass": (GOOD, f"The server that sent it is allowed to send mail for {domain} (SPF)."),
        "fail": (BAD, f"{domain} says the server that sent it may not send its mail (SPF fail)."),
        "softfail": (
            BAD,
            f"{domain} says the server that sent it is probably not one of its own (SPF softfail).",
        ),
        "neutral": (INFO, f"{domain} does not say whether the sending server is its own (SPF)."),
        "none": (INFO, f"{domain} publishes no SPF record: the sending server is unchecked."),
        "temperror": (INFO, f"{domain}'s SPF record could not be looked up just then."),
        "permerror": (BAD, f"{domain}'s SPF record is broken (SPF permerror)."),
    }.get(info.result)
    return Finding(words[0], words[1], f"spf={info.result}") if words else None


def _dkim_words(info: ResultInfo) -> Finding | None:
    domain = info.props.get("header.d", "") or _domain_of(info.props.get("header.i", ""))
    signer = domain or "an unnamed signer"
    words = {
        "pass": (GOOD, f"Signed by {signer}, and the signature matches: not altered on the way."),
        "fail": (
            BAD,
            f"Carries a signature of {signer} that does not match: the message was changed"
            " on the way, or the signature is forged.",
        ),
        "neutral": (BAD, f"Carries a signature of {signer} that cannot be checked."),
        "policy": (BAD, f"Carries a signature of {signer} that we do not accept."),
        "permerror": (BAD, f"Carries a signature of {signer} that cannot be checked."),
        "temperror": (INFO, f"The key of {signer}'s signature could not be looked up just then."),
        "none": (INFO, "Not signed (no DKIM signature)."),
    }.get(info.result)
    return Finding(words[0], words[1], f"dkim={info.result}") if words else None


def _dmarc_words(info: ResultInfo) -> Finding | None:
    domain = info.props.get("header.from", "").lower() or "the sender's domain"
    if info.result == "pass":
        return Finding(
            GOOD, f"Really from {domain}: it passes {domain}'s DMARC check.", "dmarc=pass"
        )
    if info.result == "fail":
        policy = _policy(info)
        if policy == "reject":
            words = (
                f"Claims to be from {domain}, but {domain}'s DMARC policy rejects it: neither"
                f" SPF nor a DKIM signature shows that {domain} sent it."
            )
        elif policy == "quarantine":
            words = (
                f"Claims to be from {domain}, but fails {domain}'s DMARC check, and {domain}"
                " asks for such mail to go to Junk."
            )
        else:
            words = f"Claims to be from {domain}, but fails {domain}'s DMARC check."
        return Finding(BAD, words, "dmarc=fail")
    if info.result == "none":
        return Finding(INFO, f"{domain} publishes no DMARC policy.", "dmarc=none")
    if info.result in {"temperror", "permerror"}:
        return Finding(INFO, f"{domain}'s DMARC policy could not be read.", f"dmarc={info.result}")
    return None


def _arc_words(info: ResultInfo) -> Finding | None:
    if info.result == "pass":
        return Finding(GOOD, "Forwarded with an intact chain of ARC seals.", "arc=pass")
    if info.result == "fail":
        return Finding(BAD, "Its ARC forwarding seals are broken.", "arc=fail")
    return None


AUTH_WORDS = {"spf": _spf_words, "dkim": _dkim_words, "dmarc": _dmarc_words, "arc": _arc_words}

# Plain words of the spam scorer's reason codes; a code not listed is shown as it is.
SPAM_WORDS: dict[str, str] = {
    "GTUBE": "Contains the GTUBE test string, which marks a message as spam on purpose.",
    "BLOCKLIST": "You or your domain put this sender on the block list.",
    "SENDER_BLOCKED": "You or your domain put this sender on the block list.",
    "BAYES_SPAM": "Looks like the mail you marked as junk before.",
    "CLASSIFIER_SPAM": "Looks like the mail you marked as junk before.",
    "DNSBL": "The sending server is on a public list of spam sources.",
    "DMARC_REJECT": "Fails the DMARC check of the domain it claims to be from, whose policy is"
    " to reject such mail.",
    "DMARC_QUARANTINE": "Fails the DMARC check of the domain it claims to be from, whose policy"
    " is to send such mail to Junk.",
    "SPF_FAIL": "The sending server is not allowed to send for the sender's domain (SPF).",
    "DKIM_FAIL": "Its signature does not match the message.",
}


def explain(raw: bytes, *, authserv_id: str) -> Explanation:
    """The verdict stored in `raw`'s header (only our own Authentication-Results counts)."""
    parsed = BytesHeaderParser(policy=compat32).parsebytes(headers.header_block(raw))
    findings: list[Finding] = []
    spam_value = (parsed.get("X-Spam") or "").strip().lower()
    spam = True if spam_value.startswith("yes") else False if spam_value.startswith("no") else None
    total, items = parse_spam_score(headers.header_text(parsed.get("X-Spam-Score") or ""))
    for code, score in sorted(items, key=lambda item: -item[1]):
        words = SPAM_WORDS.get(code.upper(), code.replace("_", " ").capitalize() + ".")
        tone = BAD if score > 0 else GOOD if score < 0 else INFO
        findings.append(Finding(tone, words, code, score))
    ours = authserv_id.lower().rstrip(".")
    for value in parsed.get_all("Authentication-Results") or []:
        server, results = parse_authentication_results(headers.header_text(value))
        if server.rstrip(".") != ours:
            continue
        for info in results:
            describe = AUTH_WORDS.get(info.method)
            finding = describe(info) if describe else None
            if finding is not None and (info.method != "spf" or "smtp.mailfrom" in info.props):
                findings.append(finding)
        break  # the topmost field of ours is the one we wrote
    return Explanation(spam, total, findings)
