"""What the inbound checks found, as values: one frozen dataclass per method and AuthResults
for the whole message, with the Authentication-Results header (RFC 8601) and the reasons in
plain words that the spam scorer and the webmail show.

`AuthResults.from_header(raw)` reads our own Authentication-Results field back from stored
bytes, so the webmail can say why a message is in Junk without a column of its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.utils.translation import gettext

SPF_RESULTS = ("pass", "fail", "softfail", "neutral", "none", "temperror", "permerror")
DKIM_RESULTS = ("pass", "fail", "neutral", "none", "temperror", "permerror", "policy")
DMARC_RESULTS = ("pass", "fail", "none", "temperror", "permerror")
DISPOSITIONS = ("none", "quarantine", "reject")


@dataclass(frozen=True)
class SPFResult:
    result: str  # one of SPF_RESULTS (RFC 7208 2.6)
    identity: str  # "mailfrom" or "helo"
    domain: str = ""  # the domain checked ("" when there was none to check)
    sender: str = ""  # the address checked (postmaster@helo for the null sender)
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.result == "pass"


@dataclass(frozen=True)
class DKIMResult:
    result: str  # one of DKIM_RESULTS (RFC 8601 2.7.1)
    domain: str = ""  # d=
    selector: str = ""  # s=
    b: str = ""  # the first characters of b=, to tell signatures apart (RFC 6008)
    reason: str = ""

    @property
    def passed(self) -> bool:
        return self.result == "pass"


@dataclass(frozen=True)
class ARCResult:
    result: str  # "none", "pass", "fail" (RFC 8617 4.4), "temperror"
    sealers: tuple[str, ...] = ()  # d= of each ARC-Seal, newest first
    instances: int = 0
    reason: str = ""
    # dmarc=/dkim=/spf= results the newest sealer recorded in its ARC-Authentication-Results
    sealed_results: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class DMARCResult:
    result: str  # one of DMARC_RESULTS
    domain: str = ""  # the RFC5322.From domain
    policy: str = "none"  # the policy that applied: p= (or sp=/np= for a subdomain)
    disposition: str = "none"  # what we do: none, quarantine, reject (after pct/t and overrides)
    org_domain: str = ""
    spf_aligned: bool = False
    dkim_aligned: bool = False
    # why the policy was not applied (RFC 7489 7.2): "sampled_out", "trusted_forwarder",
    # "local_policy" (a client in MAILHOST_SMTP_HOSTED_SENDER_CLIENTS)
    override: str = ""
    reason: str = ""


# What the header says of a message without a DKIM signature (made once: a frozen
# dataclass's __init__ sets each field through object.__setattr__).
_NO_SIGNATURE = (DKIMResult("none"),)


@dataclass(frozen=True)
class AuthResults:
    authserv_id: str
    spf: SPFResult
    spf_helo: SPFResult
    dkim: tuple[DKIMResult, ...] = ()
    arc: ARCResult = field(default_factory=lambda: ARCResult("none"))
    dmarc: DMARCResult = field(default_factory=lambda: DMARCResult("none"))
    client_ip: str = ""

    def header_value(self) -> str:
        """The value of our Authentication-Results field (RFC 8601 2.2), folded."""
        parts = []
        for sig in self.dkim or _NO_SIGNATURE:
            text = f"dkim={sig.result}"
            if sig.reason and sig.result != "pass":
                text += f" ({_comment(sig.reason)})"
            if sig.domain:
                text += f" header.d={_value(sig.domain)}"
            if sig.selector:
                text += f" header.s={_value(sig.selector)}"
            if sig.b:
                text += f" header.b={_value(sig.b)}"
            parts.append(text)
        for spf in (self.spf, self.spf_helo):
            if spf.identity == "helo" and spf.result == "none" and not spf.domain:
                continue  # an address literal or no HELO: nothing was checked
            text = f"spf={spf.result}"
            if self.client_ip:
                text += f" ({_comment(f'{self.client_ip} {_spf_words(spf)}')})"
            if spf.identity == "helo":
                text += f" smtp.helo={_value(spf.domain)}"
            elif spf.sender:
                text += f" smtp.mailfrom={_value(spf.sender)}"
            parts.append(text)
        dmarc = self.dmarc
        text = f"dmarc={dmarc.result}"
        if dmarc.result in {"pass", "fail"}:
            comment = f"p={dmarc.policy} dis={dmarc.disposition}"
            if dmarc.override:
                comment += f" override={dmarc.override}"
            text += f" ({comment})"
        elif dmarc.reason:
            text += f" ({_comment(dmarc.reason)})"
        if dmarc.domain:
            text += f" header.from={_value(dmarc.domain)}"
        parts.append(text)
        arc = self.arc
        text = f"arc={arc.result}"
        if arc.instances:
            text += f" (i={arc.instances} {_comment(', '.join(arc.sealers))})"
            if arc.result == "pass":
                text += f" smtp.remote-ip={self.client_ip}" if self.client_ip else ""
        parts.append(text)
        return self.authserv_id + ";\r\n\t" + ";\r\n\t".join(parts)

    def header(self) -> bytes:
        return b"Authentication-Results: " + self.header_value().encode("utf-8") + b"\r\n"

    def reasons(self) -> list[tuple[str, str]]:
        """What a reader should know, as (code, words): failures first, then good news."""
        return reasons(self)

    @property
    def disposition(self) -> str:
        return self.dmarc.disposition

    @classmethod
    def from_header(cls, raw: bytes, authserv_id: str) -> AuthResults | None:
        """Our Authentication-Results field in stored bytes, read back (the topmost one with
        our authserv-id: the inbound path removed any other that claimed it)."""
        return parse_header(raw, authserv_id)


# What an SPF result says of the client address, by result; an unknown result is shown as it
# is. Templates, so that a header formats the one sentence it shows, not all seven.
_SPF_WORDS = {
    "pass": "is designated by {}",
    "fail": "is not designated by {}",
    "softfail": "is probably not designated by {}",
    "neutral": "is neither permitted nor denied by {}",
    "none": "{} publishes no SPF record",
    "temperror": "{}'s SPF could not be checked now",
    "permerror": "{}'s SPF record is broken",
}


def _spf_words(spf: SPFResult) -> str:
    words = _SPF_WORDS.get(spf.result)
    return spf.result if words is None else words.format(spf.domain or "the sender")


_TOKEN = re.compile(r"^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.@]+$")


def _value(text: str) -> str:
    """A pvalue: a token or an addr-spec as it is, else a quoted string (RFC 8601 2.2)."""
    if _TOKEN.match(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Line breaks and tabs in a comment's text, each run written as one space.
_BREAKS = re.compile(r"[\r\n\t]+")


def _comment(text: str) -> str:
    # A printable text has no line break nor tab: the substitution is skipped (re.sub with
    # the pattern's text, looked up in re's cache at each call, was most of a comment's cost;
    # a port 25 message's header has three).
    cleaned = text if text.isprintable() else _BREAKS.sub(" ", text)
    cleaned = cleaned.replace("\\", "\\\\")
    return cleaned.replace("(", "\\(").replace(")", "\\)")[:200]


def reasons(results: AuthResults) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    dmarc = results.dmarc
    domain = dmarc.domain
    if dmarc.result == "fail":
        if dmarc.policy == "reject":
            words = gettext("claims to be from %(domain)s but %(domain)s's DMARC policy rejects it")
        elif dmarc.policy == "quarantine":
            words = gettext(
                "claims to be from %(domain)s but %(domain)s's DMARC policy sends it to Junk"
            )
        else:
            words = gettext(
                "claims to be from %(domain)s but could not be shown to come from %(domain)s"
            )
        out.append((f"DMARC_FAIL_{dmarc.policy.upper()}", words % {"domain": domain}))
        if dmarc.override == "local_policy":
            out.append(
                (
                    "DMARC_LOCAL_POLICY",
                    gettext(
                        "was handed over by a server this site lists as its own, so the policy"
                        " was not applied"
                    ),
                )
            )
        elif dmarc.override == "sampled_out":
            out.append(
                (
                    "DMARC_SAMPLED_OUT",
                    gettext(
                        "%(domain)s applies its policy to only part of its mail, and not to"
                        " this message"
                    )
                    % {"domain": domain},
                )
            )
        if dmarc.override == "trusted_forwarder":
            sealer = results.arc.sealers[0] if results.arc.sealers else gettext("a forwarder")
            out.append(
                (
                    "DMARC_ARC_OVERRIDE",
                    gettext(
                        "forwarded by %(sealer)s, a trusted forwarder that vouches it was genuine"
                    )
                    % {"sealer": sealer},
                )
            )
    elif dmarc.result == "temperror":
        out.append(
            (
                "DMARC_TEMPERROR",
                gettext("%(domain)s's DMARC policy could not be checked now") % {"domain": domain},
            )
        )
    elif dmarc.result == "pass":
        out.append(
            ("DMARC_PASS", gettext("really comes from %(domain)s (DMARC)") % {"domain": domain})
        )
    spf = results.spf
    if spf.result in {"fail", "softfail"}:
        out.append(
            (
                f"SPF_{spf.result.upper()}",
                gettext("sent from %(client)s, which %(domain)s does not allow to send its mail")
                % {"client": results.client_ip or gettext("a server"), "domain": spf.domain},
            )
        )
    elif spf.result == "permerror":
        out.append(
            ("SPF_PERMERROR", gettext("%(domain)s's SPF record is broken") % {"domain": spf.domain})
        )
    failed = [d for d in results.dkim if d.result in {"fail", "permerror"}]
    for sig in failed:
        out.append(
            (
                "DKIM_FAIL",
                gettext(
                    "carries a signature of %(domain)s that does not match the message"
                    " (altered on the way, or forged)"
                )
                % {"domain": sig.domain or gettext("an unnamed domain")},
            )
        )
    if not results.dkim:
        out.append(("DKIM_NONE", gettext("is not signed (DKIM)")))
    if results.arc.result == "fail":
        out.append(("ARC_FAIL", gettext("carries a broken forwarding chain (ARC)")))
    return out


# --- reading the header back ---------------------------------------------------------------

_FIELD = re.compile(rb"(?im)^Authentication-Results[ \t]*:((?:[^\r\n]*\r?\n[ \t])*[^\r\n]*)")
_RESINFO = re.compile(r"([a-z0-9-]+)=([a-z]+)((?:\s*\((?:\\.|[^()])*\))?)((?:\s+[a-z.-]+=\S+)*)")
_PROPERTY = re.compile(r"([a-z-]+\.[a-z.-]+)=(\"(?:\\.|[^\"])*\"|[^\s;]+)")


def parse_header(raw: bytes, authserv_id: str) -> AuthResults | None:
    from mailboxes.headers import header_block

    for match in _FIELD.finditer(header_block(raw)):
        text = match.group(1).decode("utf-8", "replace")
        text = re.sub(r"\r?\n[ \t]", " ", text).strip()
        server, _, rest = text.partition(";")
        if server.split()[0:1] != [authserv_id] and server.strip().lower().split()[:1] != [
            authserv_id.lower()
        ]:
            continue
        return _parse_resinfo(rest, authserv_id)
    return None


def _props(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _PROPERTY.findall(text)}


def _parse_resinfo(text: str, authserv_id: str) -> AuthResults:
    spf = SPFResult("none", "mailfrom")
    spf_helo = SPFResult("none", "helo")
    dkim: list[DKIMResult] = []
    dmarc = DMARCResult("none")
    arc = ARCResult("none")
    client_ip = ""
    for piece in text.split(";"):
        match = _RESINFO.search(piece.strip())
        if not match:
            continue
        method, result, comment, _ = match.groups()
        props = _props(piece)
        comment = comment.strip()[1:-1] if comment.strip() else ""
        if method == "spf":
            if "smtp.helo" in props:
                spf_helo = SPFResult(result, "helo", props["smtp.helo"])
            else:
                sender = props.get("smtp.mailfrom", "")
                spf = SPFResult(result, "mailfrom", sender.rpartition("@")[2], sender)
            client_ip = client_ip or comment.split(" ")[0]
        elif method == "dkim" and result != "none":
            dkim.append(
                DKIMResult(
                    result, props.get("header.d", ""), props.get("header.s", ""), reason=comment
                )
            )
        elif method == "dmarc":
            tags = dict(t.split("=", 1) for t in comment.split() if "=" in t)
            dmarc = DMARCResult(
                result,
                props.get("header.from", ""),
                policy=tags.get("p", "none"),
                disposition=tags.get("dis", "none"),
                override=tags.get("override", ""),
            )
        elif method == "arc":
            inside = re.match(r"i=(\d+)\s*(.*)", comment)
            arc = ARCResult(
                result,
                tuple(s.strip() for s in inside.group(2).split(",") if s.strip()) if inside else (),
                int(inside.group(1)) if inside else 0,
            )
    return AuthResults(authserv_id, spf, spf_helo, tuple(dkim), arc, dmarc, client_ip)
