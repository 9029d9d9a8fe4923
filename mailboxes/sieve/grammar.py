"""What each command and test accepts: one table, read by check.py (and nothing else decides
what a script may say).

A Spec lists the positional argument forms it accepts ("string" is one string, "strings" a
string or a string list, "number"), its tagged arguments, whether it takes a test, a test list
or a block, and the extension a script must `require` to use it (RFC 5228 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 5228 2.7.3: every implementation has these two comparators; require may name them.
IMPLICIT_CAPABILITIES = frozenset({"comparator-i;octet", "comparator-i;ascii-casemap"})

CAPABILITIES = (
    "fileinto",
    "reject",
    "ereject",
    "envelope",
    "encoded-character",
    "imap4flags",
    "body",
    "variables",
    "vacation",
    "vacation-seconds",
    "copy",
    "relational",
    "comparator-i;ascii-numeric",
    "subaddress",
    "date",
    "index",
    "regex",
    "include",
    "mailbox",
    "mailboxid",
    "duplicate",
    "editheader",
    "enotify",
    "spamtest",
    "spamtestplus",
    "virustest",
    "special-use",  # RFC 8579
    "environment",  # RFC 5183
    "ihave",  # RFC 5463
)

# An extension that brings another with it (RFC 6131 3, RFC 5235 3.2).
IMPLIES = {"vacation-seconds": {"vacation"}, "spamtestplus": {"spamtest"}}


@dataclass(frozen=True, slots=True)
class Tag:
    name: str
    param: str | None = None  # "string", "strings" or "number" when the tag takes a value
    group: str | None = None  # tags of one group exclude each other: ":is" and ":contains"
    extension: str | None = None
    needs: str | None = None  # another tag this one only makes sense with (":last" -> ":index")


@dataclass(frozen=True, slots=True)
class Spec:
    name: str
    forms: tuple[tuple[str, ...], ...] = ((),)  # accepted positional forms
    tags: tuple[Tag, ...] = ()
    extension: str | None = None
    tests: str = "none"  # "none", "one" or "list"
    block: bool = False
    is_test: bool = False


def _tags(*groups: tuple[Tag, ...]) -> tuple[Tag, ...]:
    return tuple(tag for group in groups for tag in group)


COMPARATOR = (Tag(":comparator", "string", "comparator"),)
MATCH_TYPE = (
    Tag(":is", group="match"),
    Tag(":contains", group="match"),
    Tag(":matches", group="match"),
    Tag(":count", "string", "match", "relational"),  # RFC 5231
    Tag(":value", "string", "match", "relational"),
    Tag(":regex", group="match", extension="regex"),  # draft-ietf-sieve-regex
)
ADDRESS_PART = (
    Tag(":all", group="address-part"),
    Tag(":localpart", group="address-part"),
    Tag(":domain", group="address-part"),
    Tag(":user", group="address-part", extension="subaddress"),  # RFC 5233
    Tag(":detail", group="address-part", extension="subaddress"),
)
INDEX = (  # RFC 5260 6
    Tag(":index", "number", extension="index"),
    Tag(":last", extension="index", needs=":index"),
)
FLAGS = (Tag(":flags", "strings", extension="imap4flags"),)  # RFC 5232 5
COPY = (Tag(":copy", extension="copy"),)  # RFC 3894
ZONE = (
    Tag(":zone", "string", "zone"),
    Tag(":originalzone", group="zone"),
)
BODY_TRANSFORM = (  # RFC 5173 5
    Tag(":raw", group="transform"),
    Tag(":content", "strings", "transform"),
    Tag(":text", group="transform"),
)
# RFC 5229 4.1, with RFC 5435 6's :encodeurl and Pigeonhole's :quoteregex (regex draft).
SET_MODIFIERS = (
    Tag(":lower", group="modifier-40"),
    Tag(":upper", group="modifier-40"),
    Tag(":lowerfirst", group="modifier-30"),
    Tag(":upperfirst", group="modifier-30"),
    Tag(":quotewildcard", group="modifier-20"),
    Tag(":quoteregex", group="modifier-20", extension="regex"),
    Tag(":encodeurl", group="modifier-15", extension="enotify"),
    Tag(":length", group="modifier-10"),
)

_SPECS = (
    # RFC 5228 3: control commands
    Spec("require", forms=(("strings",),)),
    Spec("if", tests="one", block=True),
    Spec("elsif", tests="one", block=True),
    Spec("else", block=True),
    Spec("stop"),
    # RFC 5228 4: actions
    Spec("keep", tags=FLAGS),
    Spec("discard"),
    Spec(
        "fileinto",
        forms=(("string",),),
        extension="fileinto",
        tags=_tags(
            FLAGS,
            COPY,
            (
                Tag(":create", extension="mailbox"),  # RFC 5490 3.2
                Tag(":mailboxid", "string", extension="mailboxid"),  # RFC 9042 4
                Tag(":specialuse", "string", extension="special-use"),  # RFC 8579 4
            ),
        ),
    ),
    Spec("redirect", forms=(("string",),), tags=COPY),
    Spec("reject", forms=(("string",),), extension="reject"),  # RFC 5429 2.2
    Spec("ereject", forms=(("string",),), extension="ereject"),  # RFC 5429 2.1
    # RFC 5232 imap4flags: an optional variable name, then the flags
    Spec("setflag", forms=(("strings",), ("string", "strings")), extension="imap4flags"),
    Spec("addflag", forms=(("strings",), ("string", "strings")), extension="imap4flags"),
    Spec("removeflag", forms=(("strings",), ("string", "strings")), extension="imap4flags"),
    Spec("set", forms=(("string", "string"),), tags=SET_MODIFIERS, extension="variables"),
    Spec(
        "vacation",  # RFC 5230 4, RFC 6131
        forms=(("string",),),
        extension="vacation",
        tags=(
            Tag(":days", "number", "period"),
            Tag(":seconds", "number", "period", "vacation-seconds"),
            Tag(":subject", "string"),
            Tag(":from", "string"),
            Tag(":addresses", "strings"),
            Tag(":mime"),
            Tag(":handle", "string"),
        ),
    ),
    Spec(
        "notify",  # RFC 5435 3
        forms=(("string",),),
        extension="enotify",
        tags=(
            Tag(":from", "string"),
            Tag(":importance", "string"),
            Tag(":options", "strings"),
            Tag(":message", "string"),
        ),
    ),
    Spec(
        "addheader",  # RFC 5293 4
        forms=(("string", "string"),),
        extension="editheader",
        tags=(Tag(":last"),),
    ),
    Spec(
        "deleteheader",  # RFC 5293 5
        forms=(("string",), ("string", "strings")),
        extension="editheader",
        tags=_tags((Tag(":index", "number"), Tag(":last", needs=":index")), COMPARATOR, MATCH_TYPE),
    ),
    Spec(  # RFC 6609 3.2
        "include",
        forms=(("string",),),
        extension="include",
        tags=(
            Tag(":personal", group="location"),
            Tag(":global", group="location"),
            Tag(":once"),
            Tag(":optional"),
        ),
    ),
    Spec("return", extension="include"),
    Spec("global", forms=(("strings",),), extension="include"),
    Spec("error", forms=(("string",),), extension="ihave"),  # RFC 5463 5
    # RFC 5228 5: tests
    Spec(
        "address",
        forms=(("strings", "strings"),),
        tags=_tags(COMPARATOR, ADDRESS_PART, MATCH_TYPE, INDEX),
        is_test=True,
    ),
    Spec(
        "envelope",
        forms=(("strings", "strings"),),
        tags=_tags(COMPARATOR, ADDRESS_PART, MATCH_TYPE),
        extension="envelope",
        is_test=True,
    ),
    Spec(
        "header",
        forms=(("strings", "strings"),),
        tags=_tags(COMPARATOR, MATCH_TYPE, INDEX),
        is_test=True,
    ),
    Spec("exists", forms=(("strings",),), is_test=True),
    Spec(
        "size",
        forms=(("number",),),
        tags=(Tag(":over", group="size"), Tag(":under", group="size")),
        is_test=True,
    ),
    Spec("allof", tests="list", is_test=True),
    Spec("anyof", tests="list", is_test=True),
    Spec("not", tests="one", is_test=True),
    Spec("true", is_test=True),
    Spec("false", is_test=True),
    Spec(
        "body",
        forms=(("strings",),),
        tags=_tags(COMPARATOR, MATCH_TYPE, BODY_TRANSFORM),
        extension="body",
        is_test=True,
    ),
    Spec(
        "string",  # RFC 5229 5
        forms=(("strings", "strings"),),
        tags=_tags(COMPARATOR, MATCH_TYPE),
        extension="variables",
        is_test=True,
    ),
    Spec(
        "hasflag",  # RFC 5232 4
        forms=(("strings",), ("strings", "strings")),
        tags=_tags(COMPARATOR, MATCH_TYPE),
        extension="imap4flags",
        is_test=True,
    ),
    Spec(
        "date",  # RFC 5260 4
        forms=(("string", "string", "strings"),),
        tags=_tags(ZONE, COMPARATOR, MATCH_TYPE, INDEX),
        extension="date",
        is_test=True,
    ),
    Spec(
        "currentdate",  # RFC 5260 5
        forms=(("string", "strings"),),
        tags=_tags((ZONE[0],), COMPARATOR, MATCH_TYPE),
        extension="date",
        is_test=True,
    ),
    Spec("mailboxexists", forms=(("strings",),), extension="mailbox", is_test=True),
    Spec("mailboxidexists", forms=(("strings",),), extension="mailboxid", is_test=True),
    Spec(  # RFC 8579 3
        "specialuse_exists",
        forms=(("strings",), ("string", "strings")),
        extension="special-use",
        is_test=True,
    ),
    Spec(
        "duplicate",  # RFC 7352 3
        tags=(
            Tag(":handle", "string"),
            Tag(":header", "string", "id"),
            Tag(":uniqueid", "string", "id"),
            Tag(":seconds", "number"),
            Tag(":last"),
        ),
        extension="duplicate",
        is_test=True,
    ),
    Spec("valid_notify_method", forms=(("strings",),), extension="enotify", is_test=True),
    Spec(
        "notify_method_capability",
        forms=(("string", "string", "strings"),),
        tags=_tags(COMPARATOR, MATCH_TYPE),
        extension="enotify",
        is_test=True,
    ),
    Spec(
        "spamtest",  # RFC 5235
        forms=(("string",),),
        tags=_tags((Tag(":percent", extension="spamtestplus"),), COMPARATOR, MATCH_TYPE),
        extension="spamtest",
        is_test=True,
    ),
    Spec(
        "environment",
        forms=(("string", "strings"),),
        tags=_tags(COMPARATOR, MATCH_TYPE),
        extension="environment",
        is_test=True,
    ),
    Spec("ihave", forms=(("strings",),), extension="ihave", is_test=True),
    Spec(
        "virustest",
        forms=(("string",),),
        tags=_tags(COMPARATOR, MATCH_TYPE),
        extension="virustest",
        is_test=True,
    ),
)

SPECS = {spec.name: spec for spec in _SPECS}

COMPARATORS = {
    "i;octet": None,
    "i;ascii-casemap": None,
    "i;ascii-numeric": "comparator-i;ascii-numeric",  # RFC 4790 9.1, needs require
}
RELATIONS = frozenset({"gt", "ge", "lt", "le", "eq", "ne"})  # RFC 5231 5
# RFC 5260 4.2
DATE_PARTS = frozenset(
    {
        "year",
        "month",
        "day",
        "date",
        "julian",
        "hour",
        "minute",
        "second",
        "time",
        "iso8601",
        "std11",
        "zone",
        "weekday",
    }
)
