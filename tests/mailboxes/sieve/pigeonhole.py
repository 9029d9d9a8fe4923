"""The differential corpus: cases, Pigeonhole's `sieve-test` and our interpreter, both reduced to
one normalized list of action lines so that they can be compared.

A case is corpus/cases/<name>.sieve. Its leading `#` comment lines may set:

    # message: list.eml                 (corpus/messages/, default plain.eml)
    # from: bob@remote.example          (envelope sender, default bob@remote.example)
    # to: alice@example.org             (envelope recipient, default alice@example.org)
    # orig-to: alice@example.org        (original recipient, default the recipient)

Normalized action lines (one per action, in the order the script made them):

    store <mailbox> [copy] [flags=<flag> ...]    keep (INBOX) and fileinto
    redirect <address> [copy]
    discard
    reject <reason>
    vacation seconds=<n> [subject=...] [from=...] [handle=...] reason=<text>
    notify <method> [importance=<n>] [from=...] [message=...]
    implicit-keep [flags=...]                   last line when the implicit keep stays
    compile-error                               the script does not compile (nothing else)

Run `python -m tests.mailboxes.sieve.pigeonhole --record` to refresh corpus/pigeonhole.json from
the installed sieve-test (the recorded values are what the differential test compares ours
against), `--compare` to print how many cases give the same actions in both, `--show <case>`
to see one case's lines from sieve-test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
CASES = CORPUS / "cases"
MESSAGES = CORPUS / "messages"
PERSONAL = CORPUS / "include" / "personal"
GLOBAL = CORPUS / "include" / "global"
RECORD = CORPUS / "pigeonhole.json"

# Folders that exist in the test mailbox (mailboxexists, fileinto without :create); INBOX in
# any case, as IMAP and selectors.folder_get have it. Pigeonhole's vacation periods are bound
# to 0 .. 10 years below: ours leaves :days/:seconds as written (RFC 5230 4.1 and RFC 6131
# let a site set limits; that is the MDA's business).
MAILBOXES = ("INBOX", "Work", "Lists", "Junk", "Archive", "Archive/2026")

# Spam and virus scores come from headers on Pigeonhole's side (its configuration below) and
# from SieveContext on ours, read from the same headers by the harness.
SPAM_HEADER = "X-Spam-Score"
SPAM_MAX = 10.0
VIRUS_HEADER = "X-Virus-Score"
VIRUS_MAX = 5.0


@dataclass(frozen=True)
class Case:
    name: str
    script: str
    message: str
    mail_from: str
    rcpt_to: str
    orig_to: str

    @property
    def raw(self) -> bytes:
        return (MESSAGES / self.message).read_bytes()


def load_case(path: Path) -> Case:
    text = path.read_text()
    meta = {}
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        key, sep, value = line[1:].partition(":")
        if sep and key.strip() in ("message", "from", "to", "orig-to"):
            meta[key.strip()] = value.strip()
    rcpt = meta.get("to", "alice@example.org")
    return Case(
        name=path.stem,
        script=text,
        message=meta.get("message", "plain.eml"),
        mail_from=meta.get("from", "bob@remote.example"),
        rcpt_to=rcpt,
        orig_to=meta.get("orig-to", rcpt),
    )


def load_cases() -> list[Case]:
    return [load_case(p) for p in sorted(CASES.glob("*.sieve"))]


def recorded() -> dict[str, list[str]]:
    if not RECORD.exists():
        return {}
    return json.loads(RECORD.read_text())


# ---------------------------------------------------------------------------------------------
# Pigeonhole


def sieve_test_path() -> str | None:
    return shutil.which("sieve-test")


_CONFIG = """\
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 0
first_valid_gid = 0
base_dir = {dir}/run
state_dir = {dir}/state
log_path = /dev/stderr
info_log_path = /dev/null
mail_location = maildir:{dir}/mail
recipient_delimiter = +
namespace inbox {{
  inbox = yes
  separator = /
}}
plugin {{
  sieve = file:{dir}/personal;active={dir}/active.sieve
  sieve_global = {dir}/global
  sieve_extensions = +vacation-seconds +editheader +spamtest +spamtestplus +virustest
  sieve_vacation_min_period = 0
  sieve_vacation_default_period = 7d
  sieve_vacation_max_period = 3650d
  sieve_spamtest_status_type = score
  sieve_spamtest_status_header = {spam_header}: (-?[[:digit:]]+(\\.[[:digit:]]+)?)
  sieve_spamtest_max_value = {spam_max}
  sieve_virustest_status_type = score
  sieve_virustest_status_header = {virus_header}: (-?[[:digit:]]+(\\.[[:digit:]]+)?)
  sieve_virustest_max_value = {virus_max}
  sieve_max_redirects = 4
  sieve_max_actions = 32
}}
"""


class Pigeonhole:
    """A private home for sieve-test: a config, a Maildir with MAILBOXES, the include dirs."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mh-pigeonhole-"))
        # sieve-test drops privileges to mail_uid; as root that must be another user.
        uid, gid = (65534, 65534) if os.getuid() == 0 else (os.getuid(), os.getgid())
        os.chmod(self.dir, 0o755)
        (self.dir / "config").write_text(
            _CONFIG.format(
                uid=uid,
                gid=gid,
                dir=self.dir,
                spam_header=SPAM_HEADER,
                spam_max=SPAM_MAX,
                virus_header=VIRUS_HEADER,
                virus_max=VIRUS_MAX,
            )
        )
        for sub in ("run", "state", "work"):
            (self.dir / sub).mkdir()
        shutil.copytree(PERSONAL, self.dir / "personal")
        shutil.copytree(GLOBAL, self.dir / "global")
        for name in MAILBOXES:
            folder = (
                self.dir / "mail"
                if name == "INBOX"
                else self.dir / "mail" / ("." + name.replace("/", "."))
            )
            for leaf in ("cur", "new", "tmp"):
                (folder / leaf).mkdir(parents=True, exist_ok=True)
        if uid:
            for root, dirs, files in os.walk(self.dir):
                for entry in [root, *(os.path.join(root, f) for f in dirs + files)]:
                    os.chown(entry, uid, gid)

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def vacation(self, case: VacationCase) -> str:
        """ "send" or "skip": what sieve-test -e does with a plain vacation action."""
        for dupes in self.dir.glob(".dovecot.lda-dupes*"):
            dupes.unlink()  # each case on its own: no "already answered" across cases
        plain = Case(
            case.name, VACATION_SCRIPT, "plain.eml", case.mail_from, case.rcpt_to, case.rcpt_to
        )
        return parse_vacation_log(self._sieve_test(plain, case.raw, ["-e"])[1])

    def reject_notice(self, case: Case) -> bytes:
        """The notice sieve-test -e sends for the case's reject (it prints it on stdout)."""
        out = self._sieve_test(case, case.raw, ["-e"])[0]
        notice = out.partition("\nRECIPIENT: ")[0]
        return notice.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")

    def run(self, case: Case) -> list[str]:
        return parse_sieve_test(*self._sieve_test(case, case.raw, []))

    def _sieve_test(self, case: Case, raw: bytes, options: list[str]) -> tuple[str, str]:
        work = self.dir / "work"
        script = work / "script.sieve"
        message = work / "message.eml"
        script.write_text(case.script)
        message.write_bytes(raw)
        for leftover in work.glob("script.svbin"):
            leftover.unlink()
        os.chmod(script, 0o644)
        os.chmod(message, 0o644)
        # TZ=UTC: dates without :zone are in the local zone, ours takes SieveContext.now's (UTC).
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir), "TZ": "UTC"}
        env["USER"] = "nobody" if os.getuid() == 0 else os.environ.get("USER", "user")
        proc = subprocess.run(
            [
                sieve_test_path() or "sieve-test",
                *options,
                "-c",
                str(self.dir / "config"),
                "-f",
                case.mail_from,
                "-r",
                case.rcpt_to,
                "-a",
                case.orig_to,
                str(script),
                str(message),
            ],
            capture_output=True,
            env=env,
            cwd=work,
            timeout=30,
        )
        return proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")


def _flags(text: str) -> list[str]:
    return sorted(_flag(f) for f in text.split())


def _flag(flag: str) -> str:
    return flag.lower() if flag.startswith("\\") else flag


def parse_sieve_test(out: str, err: str) -> list[str]:
    """Reduce sieve-test's report to the normalized action lines."""
    if "failed to compile sieve script" in err:
        return ["compile-error"]
    if "Performed actions:" not in out:
        # A run-time failure before any result: Pigeonhole keeps the message.
        return ["runtime-error", "implicit-keep"]
    performed, _, implicit = out.partition("Implicit keep:")
    lines: list[str] = []
    current: dict | None = None
    in_message = False
    message_lines: list[str] = []

    def finish() -> None:
        nonlocal current
        if current is not None and current["kind"] != "bookkeeping":
            lines.append(_format(current))
            current = None

    for line in performed.split("\n"):
        if not in_message:
            line = line.rstrip("\r")
        if in_message:
            if line == "END MESSAGE":
                in_message = False
                assert current is not None
                current["reason"] = "\n".join(message_lines)
            else:
                message_lines.append(line)
            continue
        if line == "START MESSAGE":
            in_message = True
            message_lines = []
            continue
        stripped = line.strip()
        if stripped.startswith("* "):
            finish()
            current = _action(stripped[2:])
        elif stripped.startswith("+ add IMAP flags:") and current is not None:
            current["flags"] = _flags(stripped.partition(":")[2])
        elif stripped == "+ preserve implicit keep" and current is not None:
            current["copy"] = True
        elif stripped.startswith("=> ") and current is not None:
            key, _, value = stripped[3:].partition(":")
            key, value = key.strip(), value.strip()
            if key == "recipients":
                current["recipients"] = []
            else:
                current.setdefault("fields", {})[key] = value
        elif stripped.startswith("+ To:") and current is not None and "recipients" in current:
            current["recipients"].append(stripped.partition(":")[2].strip())
    finish()
    keep = re.search(r"\* store message in folder: (.*)((?:\n\s+\+ .*)*)", implicit)
    if keep:
        flags = re.search(r"\+ add IMAP flags: (.*)", keep.group(2))
        lines.append(
            "implicit-keep" + (" flags=" + " ".join(_flags(flags.group(1))) if flags else "")
        )
    elif "(none)" not in implicit and implicit.strip():
        lines.append("implicit-keep ?" + implicit.strip().replace("\n", " "))
    return lines


def _action(text: str) -> dict:
    if text.startswith("store message in folder:"):
        return {"kind": "store", "mailbox": text.partition(":")[2].strip()}
    if text.startswith("redirect message to: "):
        return {"kind": "redirect", "address": text.partition(": ")[2].strip("<>")}
    if text == "discard":
        return {"kind": "discard"}
    if text.startswith("reject message with reason: "):
        return {"kind": "reject", "reason": text.partition(": ")[2]}
    if text.startswith("send vacation message"):
        return {"kind": "vacation"}
    if "track" in text and "duplicate" in text:
        # duplicate's bookkeeping (ours is the SieveContext.duplicate callback): not an action.
        return {"kind": "bookkeeping"}
    if text.startswith("send notification with method '"):
        return {"kind": "notify", "method": text.split("'")[1]}
    return {"kind": "other", "text": text}


def _text(text: str) -> str:
    """sieve-test prints control characters (the CR LF of multi-line text) as '?'."""
    return re.sub(r"[\x00-\x1f]", "?", text)


def _format(action: dict) -> str:
    kind = action["kind"]
    copy = " copy" if action.get("copy") else ""
    if kind == "store":
        flags = action.get("flags")
        return f"store {action['mailbox']}{copy}" + (" flags=" + " ".join(flags) if flags else "")
    if kind == "redirect":
        return f"redirect {action['address']}{copy}"
    if kind == "discard":
        return "discard"
    if kind == "reject":
        return f"reject {_text(action['reason'])}"
    if kind == "vacation":
        fields = action.get("fields", {})
        parts = ["vacation", f"seconds={fields.get('seconds', '?')}"]
        for key in ("subject", "from"):
            if key in fields:
                parts.append(f"{key}={fields[key]}")
        # Without :handle Pigeonhole prints the handle it derives from the reason and the
        # other arguments; only an explicit handle is compared.
        handle = fields.get("handle", "")
        reason = action.get("reason", "")
        if handle and not re.search(r"<(NO-)?MIME>$", handle) and not reason.startswith(handle):
            parts.append(f"handle={handle}")
        parts.append(f"reason={_text(action.get('reason', ''))}")
        return " ".join(parts)
    if kind == "notify":
        fields = action.get("fields", {})
        method = action["method"] + ",".join(action.get("recipients", []))
        parts = ["notify", method]
        if "importance" in fields:
            parts.append(f"importance={fields['importance']}")
        if "from" in fields:
            parts.append(f"from={fields['from']}")
        if "subject" in fields:
            parts.append(f"message={fields['subject']}")
        return " ".join(parts)
    return "other " + action.get("text", "")


# ---------------------------------------------------------------------------------------------
# Vacation: whether a reply goes out at all (RFC 5230 4.5/4.6, RFC 3834 2), with sieve-test -e,
# which carries the actions out and logs "sent vacation response" or "discarding ...".

VACATION_RECORD = CORPUS / "pigeonhole-vacation.json"
VACATION_SCRIPT = 'require "vacation";\nvacation "I am away.";\n'


@dataclass(frozen=True)
class VacationCase:
    """plain.eml with `headers` replacing (or, for new names, adding) fields; "" deletes."""

    name: str
    headers: tuple[tuple[str, str], ...] = ()
    mail_from: str = "bob@remote.example"
    rcpt_to: str = "alice@example.org"

    @property
    def raw(self) -> bytes:
        head, _, body = (MESSAGES / "plain.eml").read_bytes().partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        for name, value in self.headers:
            key = name.lower().encode() + b":"
            lines = [line for line in lines if not line.lower().startswith(key)]
            if value:
                lines.append(f"{name}: {value}".encode())
        return b"\r\n".join(lines) + b"\r\n\r\n" + body


VACATION_CASES = [
    VacationCase("ordinary"),
    VacationCase("cc-only", (("To", "carol@example.org"), ("Cc", "alice@example.org"))),
    VacationCase("not-addressed", (("To", "carol@example.org"), ("Cc", ""))),
    VacationCase("undisclosed", (("To", "undisclosed-recipients:;"), ("Cc", ""))),
    VacationCase("uppercase-address", (("To", "ALICE@EXAMPLE.ORG"),)),
    VacationCase("precedence-bulk", (("Precedence", "bulk"),)),
    VacationCase("precedence-list", (("Precedence", "list"),)),
    VacationCase("precedence-junk", (("Precedence", "junk"),)),
    VacationCase("precedence-first-class", (("Precedence", "first-class"),)),
    VacationCase("auto-submitted-generated", (("Auto-Submitted", "auto-generated"),)),
    VacationCase("auto-submitted-replied", (("Auto-Submitted", "auto-replied"),)),
    VacationCase("auto-submitted-no", (("Auto-Submitted", "no"),)),
    VacationCase("list-id", (("List-Id", "<dev.lists.example.net>"),)),
    VacationCase("list-post", (("List-Post", "<mailto:dev@lists.example.net>"),)),
    VacationCase("list-unsubscribe", (("List-Unsubscribe", "<mailto:u@lists.example.net>"),)),
    VacationCase("list-help", (("List-Help", "<mailto:help@lists.example.net>"),)),
    VacationCase("x-auto-response-suppress", (("X-Auto-Response-Suppress", "OOF"),)),
    VacationCase("mailer-daemon", mail_from="MAILER-DAEMON@remote.example"),
    VacationCase("owner-prefix", mail_from="owner-dev@lists.example.net"),
    VacationCase("request-suffix", mail_from="dev-request@lists.example.net"),
    VacationCase("bounces-suffix", mail_from="dev-bounces@lists.example.net"),
    VacationCase("listserv", mail_from="LISTSERV@lists.example.net"),
    VacationCase("majordomo", mail_from="majordomo@lists.example.net"),
    VacationCase("noreply", mail_from="noreply@remote.example"),
    VacationCase("from-self", mail_from="alice@example.org"),
    VacationCase(
        "resent-to", (("To", "carol@example.org"), ("Cc", ""), ("Resent-To", "alice@example.org"))
    ),
    VacationCase(
        "subaddress-rcpt", (("To", "alice+work@example.org"),), rcpt_to="alice+work@example.org"
    ),
]


def vacation_recorded() -> dict[str, str]:
    if not VACATION_RECORD.exists():
        return {}
    return json.loads(VACATION_RECORD.read_text())


def parse_vacation_log(err: str) -> str:
    if "sent vacation response" in err:
        return "send"
    if re.search(r"vacation action: (discard|not sending)", err):
        return "skip"
    return "?"


# ---------------------------------------------------------------------------------------------
# Our side: mailboxes.sieve with a SieveContext standing for the MDA, reduced to the same lines.


def _spam_score(raw: bytes, header: str) -> float | None:
    match = re.search(rb"^" + header.encode() + rb":\s*(-?[0-9.]+)", raw, re.M | re.I)
    return float(match.group(1)) if match else None


def _loader(name: str, location: str) -> str | None:
    path = (PERSONAL if location == "personal" else GLOBAL) / f"{name}.sieve"
    return path.read_text() if path.exists() else None


def context_for(sieve, case: Case):  # noqa: ANN001, ANN201 - sieve is the module
    return sieve.SieveContext(
        raw=case.raw,
        envelope_from=case.mail_from,
        envelope_to=case.orig_to,  # RCPT TO as the sender gave it (sieve-test -a)
        spam_score=_spam_score(case.raw, SPAM_HEADER),
        spam_max=SPAM_MAX,
        virus_score=_spam_score(case.raw, VIRUS_HEADER),
        virus_max=VIRUS_MAX,
        mailbox_exists=lambda name: name.upper() == "INBOX" or name in MAILBOXES,
        duplicate=lambda _id, _seconds: False,
        include=_loader,
    )


def _our_flags(flags) -> str:
    if not flags:
        return ""
    names = sorted({f.lower() if f.startswith("\\") else f for f in flags})
    return " flags=" + " ".join(names)


def _mailto(uri: str) -> str:
    scheme, _, rest = uri.partition(":")
    to, _, query = rest.partition("?")
    recipients = [unquote(a) for a in to.split(",") if a]
    for pair in query.split("&") if query else []:
        key, _, value = pair.partition("=")
        if key.lower() == "to":
            recipients.extend(unquote(a) for a in value.split(",") if a)
    return f"{scheme}:" + ",".join(recipients)


def _uri_subject(uri: str) -> str | None:
    for pair in uri.partition("?")[2].split("&"):
        key, _, value = pair.partition("=")
        if key.lower() == "subject":
            return unquote(value)
    return None


def _first_line(value: str) -> str:
    # sieve-test prints a subject, :from or :message up to its first line break only.
    return value.splitlines()[0] if value else value


def normalize_ours(result, script: str) -> list[str]:
    lines = ["runtime-error"] if result.errors else []
    for action in result.actions:
        kind = type(action).__name__
        copy = " copy" if getattr(action, "copy", False) else ""
        if kind == "Keep":
            lines.append("store INBOX" + _our_flags(action.flags))
        elif kind == "FileInto":
            # INBOX is the same folder in any case (RFC 3501 5.1; selectors.folder_get).
            mailbox = "INBOX" if action.mailbox.upper() == "INBOX" else action.mailbox
            lines.append(f"store {_text(mailbox)}{copy}" + _our_flags(action.flags))
        elif kind == "Redirect":
            lines.append(f"redirect {action.address}{copy}")
        elif kind == "Discard":
            lines.append("discard")
        elif kind == "Reject":
            lines.append(f"reject {_text(action.reason)}")
        elif kind == "Vacation":
            parts = ["vacation", f"seconds={action.seconds}"]
            if action.subject is not None:
                parts.append(f"subject={_first_line(action.subject)}")
            if action.from_address is not None:
                parts.append(f"from={_first_line(action.from_address)}")
            if action.handle is not None and ":handle" in script:
                parts.append(f"handle={action.handle}")
            parts.append(f"reason={_text(action.reason)}")
            lines.append(" ".join(parts))
        elif kind == "Notify":
            parts = ["notify", _mailto(action.method)]
            parts.append(f"importance={action.importance or 2}")
            if action.from_address:
                parts.append(f"from={_first_line(action.from_address)}")
            # Pigeonhole shows the notification's subject: :message, else the URI's subject.
            subject = action.message or _uri_subject(action.method)
            if subject:
                parts.append(f"message={_first_line(subject)}")
            lines.append(" ".join(parts))
        else:
            lines.append(f"other {action!r}")
    if result.implicit_keep:
        lines.append("implicit-keep" + _our_flags(getattr(result, "implicit_keep_flags", ())))
    return lines


def run_ours(sieve, case: Case) -> list[str]:
    if sieve.check(case.script):
        return ["compile-error"]
    script = sieve.compile(case.script)
    return normalize_ours(sieve.run(script, context_for(sieve, case)), case.script)


def compare() -> None:
    """Print how many cases give the same actions in both, and each other case."""
    from mailboxes import sieve

    from .test_pigeonhole_differential import EXPECTED_DIFFERENCES

    theirs = recorded()
    cases = load_cases()
    same = listed = 0
    for case in cases:
        ours = run_ours(sieve, case)
        if ours == theirs[case.name]:
            same += 1
        elif EXPECTED_DIFFERENCES.get(case.name, ([],))[0] == ours:
            listed += 1
        else:
            print(f"{case.name}:\n  pigeonhole {theirs[case.name]}\n  ours       {ours}")
    print(
        f"{len(cases)} pairs: {same} the same actions, {listed} listed differences, "
        f"{len(cases) - same - listed} other"
    )


def record() -> None:
    if not sieve_test_path():
        sys.exit("sieve-test is not installed (Debian: apt-get install dovecot-sieve)")
    ph = Pigeonhole()
    try:
        result = {case.name: ph.run(case) for case in load_cases()}
        vacation = {case.name: ph.vacation(case) for case in VACATION_CASES}
    finally:
        ph.close()
    RECORD.write_text(json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    VACATION_RECORD.write_text(json.dumps(vacation, indent=1, sort_keys=True) + "\n")
    print(
        f"recorded {len(result)} cases in {RECORD.name}, {len(vacation)} in {VACATION_RECORD.name}"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        record()
    elif sys.argv[1:] == ["--compare"]:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
        django.setup()
        compare()
    elif len(sys.argv) == 3 and sys.argv[1] == "--show":
        ph = Pigeonhole()
        try:
            print("\n".join(ph.run(load_case(CASES / f"{sys.argv[2]}.sieve"))))
        finally:
            ph.close()
    else:
        sys.exit(
            "usage: python -m tests.mailboxes.sieve.pigeonhole --record | --compare | --show <case>"
        )
