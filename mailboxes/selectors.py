"""Reads of the mail store. Protocols, views and jobs call these instead of building queries."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.files.storage import storages
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import (
    BooleanField,
    CharField,
    Count,
    Exists,
    F,
    Func,
    IntegerField,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
)
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Cast, Coalesce, Greatest, Length

from mailboxes import headers, senderlists, srs
from mailboxes.addresses import Address, domain_to_ascii, parse_address
from mailboxes.exceptions import InvalidAddress
from mailboxes.flags import COLUMNS as FLAG_COLUMNS
from mailboxes.flags import names_of_columns
from mailboxes.models import (
    ACL_RIGHTS,
    HIERARCHY_DELIMITER,
    OTHER_USERS_NAMESPACE,
    SHARED_NAMESPACE,
    Alias,
    AppPassword,
    Blob,
    Contact,
    ContactDeleted,
    Conversation,
    DkimKey,
    Domain,
    Expunged,
    Folder,
    FolderAcl,
    Mailbox,
    Message,
    MetadataEntry,
    Passkey,
    PrivateSeen,
    RecoveryCode,
    SenderListEntry,
    SieveScript,
    SpecialUse,
    Subscription,
    WebSession,
)
from mailboxes.quotas import USAGE_FIELDS, Usage
from mailhost.expiring import ExpiringCache
from mailhost.plainsql import Columns, Read, converted, converters_of

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Resolution:
    """Where mail for one envelope recipient goes."""

    address: str
    hosted: bool  # the domain is one of ours
    mailbox_ids: tuple[int, ...] = field(default=())
    remote: tuple[str, ...] = field(default=())  # addresses outside our domains (alias targets)
    # "dmarc" or "tlsrpt" at an address aggregate reports come to (REPORT_LOCAL_PARTS): the
    # acceptance service reads and stores the reports, whether or not a mailbox is there too.
    report: str = ""

    @property
    def exists(self) -> bool:
        return bool(self.mailbox_ids or self.remote or self.report)


# The local parts of the addresses that the _dmarc (rua) and _smtp._tls records published
# for each hosted domain name (delivery/dnsrecords.py): report kind by local part.
REPORT_DMARC_LOCAL_PART = "dmarc-reports"
REPORT_TLS_LOCAL_PART = "tls-reports"
REPORT_LOCAL_PARTS = {REPORT_DMARC_LOCAL_PART: "dmarc", REPORT_TLS_LOCAL_PART: "tlsrpt"}


def domain_get(name: str) -> Domain | None:
    try:
        ascii_name = domain_to_ascii(name)
    except InvalidAddress:
        return None
    return _domain_named(ascii_name)


_DOMAIN = Columns(Domain, "d")
_domain_statement: str | None = None


def _domain_named(name: str) -> Domain | None:
    """The Domain row named `name` (A-label, lower case), in one plain statement: port 25,
    submission and AUTH ask for it on every message, and the ORM's query building cost
    more CPU than the query."""
    global _domain_statement
    if _domain_statement is None:
        _domain_statement = f"SELECT {_DOMAIN.sql} FROM {_DOMAIN.table} WHERE d.name = %s"
    with connection.cursor() as cursor:
        cursor.execute(_domain_statement, [name])
        row = cursor.fetchone()
    return None if row is None else _DOMAIN.instance(row)


def domain_dkim_keys(domain: Domain, *, published: bool = False) -> list[DkimKey]:
    """The domain's DKIM keys, oldest first; with `published`, those not retired (the ones
    whose records DNS must serve)."""
    keys = domain.dkim_keys.order_by("created_at", "id")
    if published:
        keys = keys.exclude(state=DkimKey.State.RETIRED)
    return list(keys)


def domain_names_active() -> list[str]:
    """The names (A-labels) of the active hosted domains, sorted."""
    return list(Domain.objects.filter(active=True).order_by("name").values_list("name", flat=True))


def domain_is_hosted(name: str) -> bool:
    """Is `name` an active domain of ours? Port 25 asks it for every MAIL FROM: one plain
    statement (the ORM's query building cost several times the query)."""
    db = connections[DEFAULT_DB_ALIAS]
    try:
        ascii_name = domain_to_ascii(name)
    except InvalidAddress:
        return False
    domains = db.ops.quote_name(Domain._meta.db_table)
    with db.cursor() as cursor:
        cursor.execute(f"SELECT active FROM {domains} WHERE name = %s", [ascii_name])
        row = cursor.fetchone()
    return row is not None and bool(row[0])


def mailbox_get(address: str, *, active_only: bool = True) -> Mailbox | None:
    """The mailbox with exactly this address (no aliases, no sub-addressing)."""
    try:
        parsed = parse_address(address)
    except InvalidAddress:
        return None
    return _mailbox_for(parsed, active_only=active_only)


_MAILBOX_COLUMNS = Columns(Mailbox, "m")
_FOLDER_COLUMNS = Columns(Folder, "f")


def _mailbox_for(parsed: Address, *, active_only: bool) -> Mailbox | None:
    # One plain statement (mailhost/plainsql.py) with its domain, as select_related reads it:
    # every login and RCPT TO asks, and the ORM's two queries cost more to build than to run.
    # The local part's key is the domain's (Domain.local_key): both spellings go in, the
    # domain's row picks.
    mailboxes, domains = _MAILBOX_COLUMNS, _DOMAIN
    sql = (
        f"SELECT {mailboxes.sql}, {domains.sql} FROM {domains.table} "
        f"JOIN {mailboxes.table} ON m.domain_id = d.id WHERE d.name = %s AND m.local_key = "
        "CASE WHEN d.case_sensitive_local_parts = %s THEN %s ELSE %s END"
    )
    params: list = [parsed.domain, True, parsed.local_part, parsed.local_part.lower()]
    if active_only:
        sql += " AND d.active = %s AND m.active = %s"
        params += [True, True]
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY m.id LIMIT 1", params)
        row = cursor.fetchone()
    if row is None:
        return None
    mailbox = mailboxes.instance(row)
    mailbox.domain = domains.instance(row, len(mailboxes))
    return mailbox


def mailbox_addresses_same(address: str, other: str) -> bool:
    """Whether `other` names the mailbox `address` names, by mailbox_get's normalization: the
    domain in lower-case ASCII, the local part folded to lower case unless the domain keeps
    local parts case-sensitive (a SASL authorization identity is checked with this)."""
    if address == other:
        return True
    try:
        first, second = parse_address(address), parse_address(other)
    except InvalidAddress:
        return False
    if first.domain != second.domain:
        return False
    if first.local_part == second.local_part:
        return True
    domain = _domain_named(first.domain)
    return domain is not None and (
        domain.local_key(first.local_part) == domain.local_key(second.local_part)
    )


def _active_domain(name: str, cache: dict[str, Domain | None] | None) -> Domain | None:
    if cache is not None and name in cache:
        return cache[name]
    domain = _domain_named(name)
    if domain is not None and not domain.active:
        domain = None
    if cache is not None:
        cache[name] = domain
    return domain


def _domain_and_mailbox(parsed: Address) -> tuple[Domain | None, tuple[int, Usage] | None]:
    """The active domain of `parsed` and, when one has exactly its local part, the active
    mailbox's (id, usage), in one statement: the common case of RCPT costs one
    query instead of three. Plain SQL: the ORM cost more CPU than the query."""
    db = connections[DEFAULT_DB_ALIAS]
    q = db.ops.quote_name
    domains, mailboxes = q(Domain._meta.db_table), q(Mailbox._meta.db_table)
    with db.prepared_cursor() as cursor:
        cursor.execute(
            "SELECT d.id, d.case_sensitive_local_parts, d.plus_separator, m.id, m.quota, "
            "m.used_bytes, m.quota_messages, m.used_messages "
            f"FROM {domains} d LEFT JOIN {mailboxes} m ON m.domain_id = d.id "
            "AND m.active = %s AND m.local_key = "
            "CASE WHEN d.case_sensitive_local_parts = %s THEN %s ELSE %s END "
            "WHERE d.name = %s AND d.active = %s",
            [True, True, parsed.local_part, parsed.local_part.lower(), parsed.domain, True],
        )
        row = cursor.fetchone()
    if row is None:
        return None, None
    domain = Domain(
        id=row[0],
        name=parsed.domain,
        active=True,
        case_sensitive_local_parts=bool(row[1]),
        plus_separator=row[2],
    )
    return domain, (row[3], Usage(*row[4:8])) if row[3] is not None else None


def recipient_resolve(
    address: str,
    *,
    domain_cache: dict[str, Domain | None] | None = None,
    usage: dict[int, Usage] | None = None,
) -> Resolution:
    """Resolve an envelope recipient: mailbox, alias (recursive), sub-address, catch-all.

    Aliases may point to local or remote addresses; loops and chains deeper than
    MAILHOST_ALIAS_MAX_DEPTH end quietly (the looping branch delivers nowhere).
    `domain_cache` (a dict the caller keeps for one message) saves the domain lookup for
    the second and later recipients in the same domain. `usage`, when given, receives
    {mailbox id: Usage} of a mailbox found by its own address (RCPT's quota
    check then needs no query of its own).
    """
    try:
        parsed = parse_address(address)
    except InvalidAddress:
        return Resolution(address=address, hosted=False)
    report = REPORT_LOCAL_PARTS.get(parsed.local_part.lower(), "")
    if domain_cache is not None and parsed.domain in domain_cache:
        domain = domain_cache[parsed.domain]
    else:
        domain, direct = _domain_and_mailbox(parsed)
        if domain_cache is not None:
            domain_cache[parsed.domain] = domain
        if direct is not None:
            mailbox_id, found = direct
            if usage is not None:
                usage[mailbox_id] = found
            return Resolution(
                address=address, hosted=True, mailbox_ids=(mailbox_id,), report=report
            )
    if domain is None:
        return Resolution(address=address, hosted=False, remote=(str(parsed),))
    if srs.is_srs(parsed.local_part):
        return _srs_resolve(address, parsed.local_part, domain_cache)
    mailbox_ids: list[int] = []
    remote: list[str] = []
    _expand(parsed, domain, mailbox_ids, remote, seen=set(), depth=0, domain_cache=domain_cache)
    return Resolution(
        address=address,
        hosted=True,
        mailbox_ids=tuple(dict.fromkeys(mailbox_ids)),
        remote=tuple(dict.fromkeys(remote)),
        report=report,
    )


def _srs_resolve(
    address: str, local_part: str, domain_cache: dict[str, Domain | None] | None
) -> Resolution:
    """A bounce to an SRS address we wrote when forwarding (mailboxes.srs) goes on to the
    original sender; a forged, mangled or expired one is nobody here."""
    try:
        original = srs.reverse(local_part)
    except srs.SRSError as exc:
        logger.info("srs refused to=<%s> reason=%s", address, exc)
        return Resolution(address=address, hosted=True)
    resolved = recipient_resolve(original, domain_cache=domain_cache)
    if not resolved.hosted:
        return Resolution(address=address, hosted=True, remote=(original,))
    return Resolution(
        address=address, hosted=True, mailbox_ids=resolved.mailbox_ids, remote=resolved.remote
    )


def _expand(
    parsed: Address,
    domain: Domain,
    mailbox_ids: list[int],
    remote: list[str],
    *,
    seen: set[str],
    depth: int,
    domain_cache: dict[str, Domain | None] | None = None,
) -> None:
    key = f"{domain.local_key(parsed.local_part)}@{domain.name}"
    if key in seen or depth > settings.MAILHOST_ALIAS_MAX_DEPTH:
        logger.warning("alias loop or chain too deep at %s", key)
        return
    seen.add(key)
    local_key = domain.local_key(parsed.local_part)
    candidates = [local_key]
    sep = domain.plus_separator
    if sep and sep in local_key.strip(sep):
        candidates.append(local_key.split(sep, 1)[0])
    for candidate in candidates:
        mailbox_id = (
            Mailbox.objects.filter(domain=domain, local_key=candidate, active=True)
            .values_list("id", flat=True)
            .first()
        )
        if mailbox_id is not None:
            mailbox_ids.append(mailbox_id)
            return
        alias = Alias.objects.filter(domain=domain, local_key=candidate, active=True).first()
        if alias is not None:
            _expand_alias(
                alias, mailbox_ids, remote, seen=seen, depth=depth, domain_cache=domain_cache
            )
            return
    catch_all = Alias.objects.filter(domain=domain, local_key="", active=True).first()
    if catch_all is not None:
        _expand_alias(
            catch_all, mailbox_ids, remote, seen=seen, depth=depth, domain_cache=domain_cache
        )


def _expand_alias(
    alias: Alias,
    mailbox_ids: list[int],
    remote: list[str],
    *,
    seen: set[str],
    depth: int,
    domain_cache: dict[str, Domain | None] | None = None,
) -> None:
    for destination in alias.destination_list:
        try:
            target = parse_address(destination)
        except InvalidAddress:
            logger.warning("alias %s has an invalid destination %r", alias, destination)
            continue
        target_domain = _active_domain(target.domain, domain_cache)
        if target_domain is None:
            remote.append(str(target))
        else:
            _expand(
                target,
                target_domain,
                mailbox_ids,
                remote,
                seen=seen,
                depth=depth + 1,
                domain_cache=domain_cache,
            )


def mailbox_owns_address(mailbox: Mailbox, address: str) -> bool:
    """May this mailbox send as `address`? Its own address, a sub-address of it, or an alias
    (not a catch-all) that delivers to it."""
    try:
        parsed = parse_address(address)
    except InvalidAddress:
        return False
    domain = _domain_named(parsed.domain)
    if domain is None or not domain.active:
        return False
    local_key = domain.local_key(parsed.local_part)
    sep = domain.plus_separator
    base = local_key.split(sep, 1)[0] if sep and sep in local_key.strip(sep) else local_key
    if domain.id == mailbox.domain_id and base == mailbox.local_key:
        return True
    for candidate in dict.fromkeys([local_key, base]):
        alias = Alias.objects.filter(domain=domain, local_key=candidate, active=True).first()
        if alias is not None:
            mailbox_ids: list[int] = []
            _expand_alias(alias, mailbox_ids, [], seen=set(), depth=0)
            return mailbox.id in mailbox_ids
    return False


# SMTP's MAIL FROM asks on every message whether the sender's domain is hosted (port 25) or
# the logged-in mailbox owns the sender address (submission): while fresh, the hook answers
# from these without a hop to a database thread. A change in this process is seen at once,
# one elsewhere within this many seconds (mailhost.expiring), as for the DKIM keys.
SENDER_CHECK_CACHE_SECONDS = 10.0
hosted_domains = ExpiringCache(
    domain_is_hosted,
    seconds=SENDER_CHECK_CACHE_SECONDS,
    size=4096,
    models=(Domain,),
    name="hosted-domains",
)
owned_addresses = ExpiringCache(
    mailbox_owns_address,
    seconds=SENDER_CHECK_CACHE_SECONDS,
    size=4096,
    models=(Domain, Alias, Mailbox),
    name="owned-addresses",
)


def identities_of(mailbox: Mailbox) -> list[dict]:
    """The addresses the mailbox may write as (its own, then each active alias, not a
    catch-all, of an active domain that delivers to it), each with its saved name and
    signature: [{"address", "name", "signature", "default"}], the default first."""
    from mailboxes.models import Identity

    addresses = [mailbox.address]
    aliases = Alias.objects.filter(active=True, domain__active=True).exclude(local_key="")
    wanted = mailbox.address.lower()
    # Only aliases that name something on their destination lines are candidates; expanding
    # each confirms it reaches this mailbox (nested aliases included).
    for alias in aliases.select_related("domain"):
        ids: list[int] = []
        _expand_alias(alias, ids, [], seen=set(), depth=0)
        if mailbox.id in ids and alias.address.lower() != wanted:
            addresses.append(alias.address)
    saved = {i.address.lower(): i for i in Identity.objects.filter(mailbox=mailbox)}
    result = []
    for address in dict.fromkeys(addresses):
        row = saved.get(address.lower())
        result.append(
            {
                "address": address,
                "name": row.name if row and row.name else mailbox.display_name,
                "signature": row.signature if row else "",
                "default": bool(row and row.is_default),
            }
        )
    if not any(r["default"] for r in result):
        result[0]["default"] = True
    result.sort(key=lambda r: not r["default"])
    return result


def sender_lists(mailbox_ids: Iterable[int], sender: str) -> dict[int, str | None]:
    """What each mailbox's allow/block lists say of `sender` (an address; pass the From
    address the reader sees): {mailbox id: "allow" | "block" | None}.

    The rule (mailboxes.senderlists): the mailbox's own entries beat its domain's; within one
    list the most specific matching pattern wins (address, then @domain, then the longest
    domain suffix)."""
    return sender_lists_read(mailbox_ids, sender).run()


def sender_lists_read(mailbox_ids: Iterable[int], sender: str) -> Read[dict[int, str | None]]:
    """sender_lists as a Read: one indexed query (the spam verdict asks once per message, with
    its other reads: delivery.spam.selectors.sender_facts); plain SQL, as in
    _domain_and_mailbox: the ORM cost more CPU than the query."""
    ids = list(dict.fromkeys(mailbox_ids))
    candidates = senderlists.sender_candidates(sender)
    if not ids or not candidates:
        return Read(None, [], lambda _: dict.fromkeys(ids))
    rank = {pattern: index for index, pattern in enumerate(candidates)}

    def answer(rows: list[tuple]) -> dict[int, str | None]:
        result: dict[int, str | None] = dict.fromkeys(ids)
        best: dict[int, tuple[int, int, str]] = {}  # mailbox id -> (domain entry?, rank, action)
        for mailbox_id, own_id, pattern, action in rows:
            key = (0 if own_id is not None else 1, rank[pattern], action)
            if mailbox_id not in best or key < best[mailbox_id]:
                best[mailbox_id] = key
        for mailbox_id, (_, _, action) in best.items():
            result[mailbox_id] = action
        return result

    return Read(
        _sender_lists_sql(len(ids), len(candidates)), [*ids, *candidates], answer, columns=4
    )


@functools.lru_cache(maxsize=64)
def _sender_lists_sql(mailboxes: int, patterns: int) -> str:
    """sender_lists_read's statement for so many mailboxes and patterns, made once (for the
    one database a process uses), not for every message."""
    q = connections[DEFAULT_DB_ALIAS].ops.quote_name
    entries, mailbox = q(SenderListEntry._meta.db_table), q(Mailbox._meta.db_table)
    return (
        f"SELECT m.id, e.mailbox_id, e.pattern, e.action FROM {mailbox} m"
        f" JOIN {entries} e ON (e.mailbox_id = m.id OR e.domain_id = m.domain_id)"
        f" WHERE m.id IN ({', '.join(['%s'] * mailboxes)})"
        f" AND e.pattern IN ({', '.join(['%s'] * patterns)})"
    )


def sender_list_entries(
    *, mailbox: Mailbox | None = None, domain: Domain | None = None
) -> QuerySet[SenderListEntry]:
    """One mailbox's own entries, or one domain's, allow first, by pattern."""
    if mailbox is not None:
        return SenderListEntry.objects.filter(mailbox=mailbox)
    return SenderListEntry.objects.filter(domain=domain)


def folders_of(mailbox: Mailbox | int) -> QuerySet[Folder]:
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    return Folder.objects.filter(mailbox_id=mailbox_id).order_by("name")


def folders_listed(mailbox_id: int) -> list[Folder]:
    """folders_of's folders as a list, read with one plain statement (every IMAP LIST asks:
    the ORM's query building cost more than the database's answer)."""
    columns = _FOLDER_COLUMNS
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns.sql} FROM {columns.table} WHERE f.mailbox_id = %s ORDER BY f.name",
            [mailbox_id],
        )
        return [columns.instance(row) for row in cursor.fetchall()]


def subscriptions_of(mailbox: Mailbox | int) -> set[str]:
    """The names on the mailbox's subscription list, folders or not (RFC 9051 6.3.7)."""
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    table = connection.ops.quote_name(Subscription._meta.db_table)
    with connection.cursor() as cursor:  # a plain statement: LIST asks it (folders_listed)
        cursor.execute(f"SELECT name FROM {table} WHERE mailbox_id = %s", [mailbox_id])
        return {name for (name,) in cursor.fetchall()}


def is_subscribed(mailbox: Mailbox | int, name: str) -> bool:
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    return Subscription.objects.filter(mailbox_id=mailbox_id, name=name).exists()


def messages_to_search(
    folder_id: int, *, max_uid: int, reader: int | None = None
) -> QuerySet[Message]:
    """A folder's messages up to UID `max_uid`, for a search to filter (mailboxes/search.py).
    With a reader (a mailbox reading another's shared folder), each row carries
    `reader_seen`: the reader's own \\Seen (PrivateSeen), which its searches match instead
    of the owner's `seen`, and `reader_modseq`, the later of the message's MODSEQ and the
    reader's own change."""
    scope = Message.objects.filter(folder_id=folder_id, uid__lte=max_uid)
    if reader is not None:
        own = PrivateSeen.objects.filter(folder_id=folder_id, reader_id=reader, uid=OuterRef("uid"))
        scope = scope.annotate(
            reader_seen=_private_seen_exists(folder_id, reader),
            reader_modseq=Greatest(
                F("modseq"), Coalesce(Subquery(own.values("modseq")[:1]), Value(0))
            ),
        )
    return scope


class _IsTrue(Func):
    """`(EXISTS (...)) IS TRUE`: the same truth as the bare EXISTS, but PostgreSQL does not
    pull it up into a semi or anti join. It is then a subplan, hashed (one pass over the
    reader's rows) or one index probe per message, whatever the statistics. As a join it was
    planned from them: on tables not yet ANALYZEd, a server-side cursor's plan (Django's
    iterator) took a nested loop over the reader's materialized rows, 100k messages times
    50k rows, and a reader's SEARCH UNSEEN ran for minutes."""

    template = "(%(expressions)s) IS TRUE"
    output_field = BooleanField()


def _private_seen_exists(folder_id: int, reader: int) -> _IsTrue:
    return _IsTrue(
        Exists(
            PrivateSeen.objects.filter(
                folder_id=folder_id, reader_id=reader, uid=OuterRef("uid"), seen=True
            )
        )
    )


def messages_to_search_in_mailbox(
    mailbox: Mailbox | int, *, folder_id: int | None = None
) -> QuerySet[Message]:
    """A mailbox's messages (or one folder's), their folder rows read with them, for a
    search to filter (mailboxes/search.py)."""
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    scope = Message.objects.filter(folder__mailbox_id=mailbox_id)
    if folder_id is not None:
        scope = scope.filter(folder_id=folder_id)
    return scope.select_related("folder")


def message_sort_rows(
    folder_id: int, max_uid: int, columns: Sequence[str], *, uids: Sequence[int] | None = None
) -> list[tuple]:
    """(uid, *columns) of the folder's messages up to max_uid (or of those among `uids`, a
    few), in UID order: the cached header fields IMAP SORT and THREAD order by (never the
    blobs); dates as UTC text."""
    # Dates come as the database's own UTC text, which sorts as the instants do: converting
    # 100k values to datetime objects (and comparing those) cost more than the sort itself.
    dates = {c: Cast(c, CharField()) for c in columns if c in ("internal_date", "sent_date")}
    chosen = Message.objects.filter(folder_id=folder_id, uid__lte=max_uid)
    if uids is not None:
        chosen = chosen.filter(uid__in=list(uids))
    rows = (
        chosen.annotate(**{f"{c}_text": cast for c, cast in dates.items()})
        .order_by("uid")
        .values_list("uid", *(f"{c}_text" if c in dates else c for c in columns))
    )
    return list(rows.iterator(chunk_size=5000))


def message_blob_names(folder_id: int, uids: Sequence[int]) -> dict[int, str]:
    """uid -> blob storage name of the folder's messages with those UIDs (a few of them)."""
    rows = Message.objects.filter(folder_id=folder_id, uid__in=list(uids)).values_list(
        "uid", "blob__name"
    )
    return dict(rows)


def folder_get(mailbox: Mailbox | int, name: str) -> Folder | None:
    """A folder by name; `INBOX` matches in any case (RFC 9051 5.1)."""
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    if name.upper() == "INBOX":
        name = "INBOX"
    # A plain statement (mailhost/plainsql.py): every SELECT, STATUS and APPEND asks.
    columns = _FOLDER_COLUMNS
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {columns.sql} FROM {columns.table} WHERE f.mailbox_id = %s AND f.name = %s",
            [mailbox_id, name],
        )
        row = cursor.fetchone()
    return columns.instance(row) if row is not None else None


def folder_by_special_use(mailbox: Mailbox | int, special_use: str) -> Folder | None:
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    return Folder.objects.filter(mailbox_id=mailbox_id, special_use=special_use).first()


def messages_in(folder: Folder | int) -> QuerySet[Message]:
    folder_id = folder if isinstance(folder, int) else folder.id
    return Message.objects.filter(folder_id=folder_id).order_by("uid")


# What blob_read raises for a blob released since its name or id was read (by id, the row
# itself is gone): callers that render many messages skip the one it names.
BLOB_GONE: tuple[type[Exception], ...] = (FileNotFoundError, Blob.DoesNotExist)


def blob_read(blob: Blob | int | str, *, limit: int = -1) -> bytes:
    """The raw bytes of a blob (by row, id or storage name), or their first `limit` bytes.

    Raises FileNotFoundError when the blob is gone (released by an expunge since its name
    was read), whether its bytes were a file or inline in the row (Blob.DoesNotExist when
    read by the id of a row gone since: BLOB_GONE names both)."""
    return blob_read_range(blob, offset=0, length=limit)


def blob_read_range(blob: Blob | int | str, *, offset: int, length: int = -1) -> bytes:
    """`length` bytes of a blob from `offset` (-1: to the end; fewer at its end, none past
    it): a slice of an inline blob, a seek and one read of a file, one ranged GET of an
    object. Raises as blob_read does."""
    name, data = _blob_inline(blob)
    if data is not None:
        return bytes(data[offset:] if length < 0 else data[offset : offset + length])
    storage = storages["blobs"]
    read_range = getattr(storage, "read_range", None)
    if read_range is not None:  # object storage: one GET, ranged for a part
        return read_range(name, offset, length)
    with storage.open(name, "rb") as fh:
        if offset:
            fh.seek(offset)
        return fh.read(length)


def blob_stream(
    blob: Blob | int | str, *, offset: int = 0, length: int = -1, chunk_size: int = 0
) -> Iterator[bytes]:
    """The bytes of blob_read_range in chunks of at most `chunk_size` (0:
    MAILHOST_BLOB_STREAM_CHUNK), for readers of large messages: never the whole in memory.
    One open file, or one GET (ranged for a part) whose body is read as the chunks are
    taken. The file or GET is opened now, so FileNotFoundError comes from this call, not
    from the iterator; close the iterator when stopping early."""
    chunk_size = chunk_size or settings.MAILHOST_BLOB_STREAM_CHUNK
    name, data = _blob_inline(blob)
    if data is not None:
        data = (
            memoryview(data)[offset:] if length < 0 else memoryview(data)[offset : offset + length]
        )
        return (bytes(data[i : i + chunk_size]) for i in range(0, len(data), chunk_size))
    storage = storages["blobs"]
    open_range = getattr(storage, "open_range", None)
    if open_range is not None:  # object storage
        return open_range(name, offset, length, chunk_size)
    fh = storage.open(name, "rb")
    return _FileChunks(fh, offset, length, chunk_size)


class _FileChunks:
    """An open blob file a chunk at a time from offset; closed at its end or by close()."""

    def __init__(self, fh, offset: int, length: int, chunk_size: int) -> None:  # noqa: ANN001
        self.fh, self.left, self.chunk_size = fh, length if length >= 0 else None, chunk_size
        if offset:
            fh.seek(offset)

    def __iter__(self) -> _FileChunks:
        return self

    def __next__(self) -> bytes:
        if self.fh is None or self.left == 0:
            self.close()
            raise StopIteration
        size = self.chunk_size if self.left is None else min(self.chunk_size, self.left)
        chunk = self.fh.read(size)
        if not chunk:
            self.close()
            raise StopIteration
        if self.left is not None:
            self.left -= len(chunk)
        return chunk

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def _blob_inline(blob: Blob | int | str) -> tuple[str, bytes | memoryview | None]:
    """(storage name, the bytes when they are inline in the row, else None); raises as
    blob_read does for a blob gone."""
    if isinstance(blob, int):
        blob = Blob.objects.get(pk=blob)
    name = blob if isinstance(blob, str) else blob.name
    if not Blob.name_is_inline(name):
        return name, None
    if isinstance(blob, str):
        data = Blob.objects.filter(name=name).values_list("data", flat=True).first()
    else:
        data = blob.data
    if data is None:
        raise FileNotFoundError(name)
    return name, data  # PostgreSQL gives a memoryview


def blob_path(blob: Blob | str) -> str | None:
    """Local filesystem path of a blob when the storage has one (fast paths use it); None
    for a blob stored inline in its row."""
    name = blob if isinstance(blob, str) else blob.name
    if Blob.name_is_inline(name):
        return None
    try:
        return storages["blobs"].path(name)
    except NotImplementedError:
        return None


# --- IMAP session reads (protocols/imap) -------------------------------------------------


def folder_uids_between(folder_id: int, low: int, high: int) -> list[int]:
    """The UIDs in [low, high) of a folder's messages now, ascending (the rows of a session's
    view: protocols/imap/uidcache.py)."""
    # Raw SQL: Django's per-row machinery costs more than the query on 100k rows.
    table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT uid FROM {table} WHERE folder_id = %s AND uid >= %s AND uid < %s ORDER BY uid",
            [folder_id, low, high],
        )
        return [row[0] for row in cursor.fetchall()]


def folder_expunged_since(folder_id: int, modseq: int) -> list[tuple[int, int]]:
    """(uid, modseq) of what was expunged from a folder after MODSEQ `modseq`: its
    tombstones (every removal writes one with its new MODSEQ), in no particular order."""
    table = connection.ops.quote_name(Expunged._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT uid, modseq FROM {table} WHERE folder_id = %s AND modseq > %s",
            [folder_id, modseq],
        )
        return cursor.fetchall()


def folder_vanished_since(folder_id: int, modseq: int) -> list[int]:
    """The UIDs expunged from a folder after MODSEQ `modseq`, ascending, each once: QRESYNC's
    VANISHED (EARLIER) (RFC 7162 3.2.5.2, 3.2.6)."""
    uids = Expunged.objects.filter(folder_id=folder_id, modseq__gt=modseq).values_list(
        "uid", flat=True
    )
    return sorted(set(uids))


def folder_view_count(folder_id: int, modseq: int, low: int, high: int) -> int:
    """How many UIDs in [low, high) a session's view of a folder holds: the view as of
    (modseq, uidnext) is the UIDs below uidnext less those expunged at or before modseq
    (protocols/imap/uidcache.py). Rows and tombstones are counted in one statement, so a
    message expunged meanwhile is counted exactly once."""
    messages = connection.ops.quote_name(Message._meta.db_table)
    expunged = connection.ops.quote_name(Expunged._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT COUNT(*) FROM {messages}"
            " WHERE folder_id = %s AND uid >= %s AND uid < %s)"
            f" + (SELECT COUNT(*) FROM {expunged}"
            " WHERE folder_id = %s AND modseq > %s AND uid >= %s AND uid < %s)",
            [folder_id, low, high, folder_id, modseq, low, high],
        )
        return cursor.fetchone()[0]


def folder_first_unseen(
    folder_id: int, modseq: int, uidnext: int, exists: int, *, reader: int | None = None
):
    """(UID, sequence number) of the first unseen message in a session's view (modseq,
    uidnext) of `exists` messages, or None: SELECT's [UNSEEN n] without reading the view.
    The number is counted from the nearer end (unseen mail is usually the newest). With a
    reader, unseen by the reader (its PrivateSeen rows)."""
    if reader is None:  # every SELECT: a plain statement
        table = connection.ops.quote_name(Message._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT uid FROM {table} WHERE folder_id = %s AND uid < %s AND seen = %s "
                "ORDER BY uid LIMIT 1",
                [folder_id, uidnext, False],
            )
            row = cursor.fetchone()
        first = row[0] if row is not None else None
    else:
        scope = Message.objects.filter(folder_id=folder_id, uid__lt=uidnext)
        scope = scope.exclude(_private_seen_exists(folder_id, reader))
        first = scope.order_by("uid").values_list("uid", flat=True).first()
    if first is None:
        return None
    if uidnext - first < first:
        return first, exists - folder_view_count(folder_id, modseq, first + 1, uidnext)
    return first, folder_view_count(folder_id, modseq, 1, first + 1)


def folder_count_from_uid(folder: Folder | int, uid: int) -> int:
    """Messages with UID >= uid (STATUS RECENT)."""
    folder_id = folder if isinstance(folder, int) else folder.id
    table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:  # a plain statement: every STATUS RECENT asks it
        cursor.execute(
            f"SELECT COUNT(*) FROM {table} WHERE folder_id = %s AND uid >= %s", [folder_id, uid]
        )
        return cursor.fetchone()[0]


def folder_deleted_count(folder: Folder | int) -> int:
    folder_id = folder if isinstance(folder, int) else folder.id
    return Message.objects.filter(folder_id=folder_id, deleted=True).count()


def folder_deleted_totals(folder: Folder | int) -> tuple[int, int]:
    """(count, octets) of the folder's messages flagged \\Deleted."""
    folder_id = folder if isinstance(folder, int) else folder.id
    totals = Message.objects.filter(folder_id=folder_id, deleted=True).aggregate(
        count=Count("id"), octets=Sum("size")
    )
    return totals["count"], totals["octets"] or 0


def mailbox_quota(mailbox: Mailbox | int) -> Usage:
    """The mailbox's limits and usage now (octets and messages; a limit of 0 is none)."""
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    return Usage(*Mailbox.objects.filter(pk=mailbox_id).values_list(*USAGE_FIELDS).get())


def mailboxes_quota(mailbox_ids: Iterable[int]) -> list[Usage]:
    """mailbox_quota of several mailboxes (those that still exist)."""
    rows = Mailbox.objects.filter(id__in=list(mailbox_ids)).values_list(*USAGE_FIELDS)
    return [Usage(*row) for row in rows]


def message_flag_rows(
    folder: Folder | int,
    uids=None,
    *,
    changed_since: int | None = None,
    reader: int | None = None,
):
    """(uid, modseq, keywords, seen, answered, flagged, deleted, draft) rows, by UID: the
    flag columns (mailboxes.flags.COLUMNS) are truthy values (0/1 on SQLite).

    `uids` limits to those UIDs; `changed_since` to rows with a higher MODSEQ. With a
    reader, `seen` and the MODSEQ are the reader's (private_seen_apply).
    """
    columns = ("uid", "modseq", "keywords", *FLAG_COLUMNS)

    def read(wanted, since):
        return _rows_by_uid(_changed(folder, since), columns, wanted)

    if reader is None:
        return read(uids, changed_since)
    return _reader_rows(folder, reader, uids, changed_since, read, _seen_column_row)


def _flag_bits() -> CombinedExpression:
    """0 + CAST(seen AS integer) * 1 + CAST(answered AS integer) * 2 + ...: the flag columns
    as SystemFlag bits. Every part names its output field (one IntegerField for all), where
    `Cast(...) * 2` and sum() left each part's to be made at every query: 15 IntegerField()s
    built at each FETCH FLAGS (each also normalizing its choices), the same SQL. Built once;
    annotate() resolves a copy."""
    total = Value(0, output_field=_INTEGER)
    for k, name in enumerate(FLAG_COLUMNS):
        bit = Value(1 << k, output_field=_INTEGER)
        term = CombinedExpression(Cast(name, _INTEGER), "*", bit, output_field=_INTEGER)
        total = CombinedExpression(total, "+", term, output_field=_INTEGER)
    return total


_INTEGER = IntegerField()
_FLAG_BITS = _flag_bits()


def message_flag_bits(
    folder: Folder | int,
    uids=None,
    *,
    changed_since: int | None = None,
    reader: int | None = None,
):
    """(uid, modseq, keywords, flag bits) rows, by UID, the bits those of
    mailboxes.flags.SystemFlag. Half the values of message_flag_rows to convert, for FETCH
    1:* (FLAGS) on large folders. With a reader, \\Seen and the MODSEQ are the reader's."""

    def read(wanted, since):
        qs = _changed(folder, since).annotate(flag_bits=_FLAG_BITS)
        return _rows_by_uid(qs, ("uid", "modseq", "keywords", "flag_bits"), wanted)

    if reader is None:
        return read(uids, changed_since)
    return _reader_rows(folder, reader, uids, changed_since, read, _seen_bit_row)


# --- A reader's own \Seen on a shared folder (PrivateSeen) -------------------------------


def private_seen_map(folder: Folder | int, reader: int, uids=None) -> dict[int, tuple[bool, int]]:
    """uid -> (seen, modseq) of the reader's PrivateSeen rows in the folder (of `uids` when
    given): one query for a whole folder or a dense range, chunks for scattered UIDs."""
    folder_id = folder if isinstance(folder, int) else folder.id
    qs = PrivateSeen.objects.filter(folder_id=folder_id, reader_id=reader)
    columns = ("uid", "seen", "modseq")
    if uids is None:
        rows = _raw_rows(qs.values_list(*columns))
    else:
        wanted = sorted(set(uids))
        if not wanted:
            return {}
        if len(wanted) > 500:
            in_range = qs.filter(uid__gte=wanted[0], uid__lte=wanted[-1])
            wanted_set = set(wanted)
            rows = [r for r in _raw_rows(in_range.values_list(*columns)) if r[0] in wanted_set]
        else:
            rows = _raw_rows(qs.filter(uid__in=wanted).values_list(*columns))
    return {uid: (bool(seen), modseq) for uid, seen, modseq in rows}


def private_seen_count(folder: Folder | int, reader: int) -> int:
    """How many of the folder's messages the reader has seen (its own \\Seen)."""
    folder_id = folder if isinstance(folder, int) else folder.id
    return PrivateSeen.objects.filter(folder_id=folder_id, reader_id=reader, seen=True).count()


def _reader_rows(folder, reader: int, uids, changed_since, read, apply) -> list:
    """Rows of `read(uids, changed_since)` (uid first, MODSEQ second) as the reader sees
    them: its own \\Seen, and a MODSEQ that is the later of the message's and of the
    reader's own change (RFC 7162 for the reader's sessions alone). With changed_since,
    the messages only the reader's \\Seen changed on count too. One batch of PrivateSeen
    rows for the whole read, never a query per message."""
    private = private_seen_map(folder, reader, uids)
    rows = read(uids, changed_since)
    if changed_since is not None:
        have = {_uid_of(row) for row in rows}
        extra = [uid for uid, (_s, m) in private.items() if m > changed_since and uid not in have]
        if extra:
            rows = sorted([*rows, *read(extra, None)], key=_uid_of)
    return [apply(row, private.get(_uid_of(row))) for row in rows]


def _uid_of(row) -> int:  # noqa: ANN001 - a row tuple (uid first) or a FetchRow
    return row.uid if isinstance(row, FetchRow) else row[0]


_SEEN_INDEX = 3 + FLAG_COLUMNS.index("seen")  # in message_flag_rows' rows


def _seen_column_row(row: tuple, private: tuple[bool, int] | None) -> tuple:
    seen, modseq = private if private is not None else (False, 0)
    return (
        row[0],
        max(row[1], modseq),
        *row[2:_SEEN_INDEX],
        seen,
        *row[_SEEN_INDEX + 1 :],
    )


def _seen_bit_row(row: tuple, private: tuple[bool, int] | None) -> tuple:
    seen, modseq = private if private is not None else (False, 0)
    bit = 1 << FLAG_COLUMNS.index("seen")
    bits = (row[3] & ~bit) | (bit if seen else 0)
    return (row[0], max(row[1], modseq), row[2], bits)


def _changed(folder: Folder | int, changed_since: int | None) -> QuerySet[Message]:
    folder_id = folder if isinstance(folder, int) else folder.id
    qs = Message.objects.filter(folder_id=folder_id)
    if changed_since is not None:
        qs = qs.filter(modseq__gt=changed_since)
    return qs


def _rows_by_uid(qs: QuerySet[Message], columns, uids) -> list[tuple]:
    """values_list rows (uid first) for `uids` (every row when None), in UID order: a
    dense set is one range query, a scattered one chunked. Read without Django's
    per-value converters, which cost more than the query itself on 100k rows."""
    if uids is None:
        return _raw_rows(qs.order_by("uid").values_list(*columns))
    wanted = sorted(set(uids))
    if not wanted:
        return []
    if len(wanted) > 500 and wanted[-1] - wanted[0] < 4 * len(wanted):
        in_range = qs.filter(uid__gte=wanted[0], uid__lte=wanted[-1])
        rows = _raw_rows(in_range.order_by("uid").values_list(*columns))
        if wanted[-1] - wanted[0] + 1 == len(wanted):
            return rows
        wanted_set = set(wanted)
        return [row for row in rows if row[0] in wanted_set]
    rows = []
    for start in range(0, len(wanted), 5000):
        chunk = qs.filter(uid__in=wanted[start : start + 5000])
        rows.extend(_raw_rows(chunk.values_list(*columns)))
    rows.sort()
    return rows


def folder_changes_since(
    folder_id: int, modseq: int, expunge_modseq: int, *, reader: int | None = None
):
    """What changed in a folder since a session last looked: (highestmodseq, flag rows
    with a higher MODSEQ (new messages included), UIDs expunged after expunge_modseq), or
    None when the folder no longer exists. With a reader, the rows carry the reader's own
    \\Seen and MODSEQ, and the reader's own \\Seen changes count as changes."""
    # Asked before nearly every command of every session that another session's change
    # touched: one plain statement (one round trip, one snapshot); the ORM's query building
    # cost more than running it.
    with connection.cursor() as cursor:
        if reader is None:
            params = [folder_id, folder_id, modseq, folder_id, expunge_modseq]
            cursor.execute(_changes_sql(), params)
        else:
            params = [folder_id, reader, folder_id, modseq, reader, folder_id, modseq, modseq]
            cursor.execute(_reader_changes_sql(), [*params, folder_id, expunge_modseq])
        found = cursor.fetchall()
    highest = None
    rows, expunged = [], []
    for kind, uid, row_modseq, *flags in found:
        if kind == 0:
            highest = uid  # the folder row: its HIGHESTMODSEQ
        elif kind == 1:
            rows.append((uid, row_modseq, *flags))
        else:
            expunged.append((uid, row_modseq))
    if highest is None:
        return None
    rows.sort()
    return highest, rows, expunged


@functools.cache
def _reader_changes_sql() -> str:
    """_changes_sql as a reader of a shared folder sees it: a message row changed after
    `modseq` with the reader's \\Seen (none: unseen) and the later MODSEQ, and the messages
    whose only change is the reader's own \\Seen (PrivateSeen.modseq after `modseq`)."""
    quote = connection.ops.quote_name
    nulls = ", ".join(["NULL"] * (1 + len(FLAG_COLUMNS)))
    private = quote(PrivateSeen._meta.db_table)
    # keywords, then the five flags in COLUMNS order, \\Seen the reader's
    keywords_first = ", ".join(
        "COALESCE(p.seen, FALSE)" if c == "seen" else f"m.{quote(c)}"
        for c in ("keywords", *FLAG_COLUMNS)
    )
    later = "CASE WHEN p.modseq > m.modseq THEN p.modseq ELSE m.modseq END"
    return (
        f"SELECT 0, highestmodseq, 0, {nulls} FROM {quote(Folder._meta.db_table)}"
        " WHERE id = %s"
        f" UNION ALL SELECT 1, m.uid, {later}, {keywords_first}"
        f" FROM {quote(Message._meta.db_table)} m LEFT JOIN {private} p"
        " ON p.folder_id = m.folder_id AND p.uid = m.uid AND p.reader_id = %s"
        " WHERE m.folder_id = %s AND m.modseq > %s"
        f" UNION ALL SELECT 1, m.uid, p.modseq, {keywords_first}"
        f" FROM {private} p JOIN {quote(Message._meta.db_table)} m"
        " ON m.folder_id = p.folder_id AND m.uid = p.uid"
        " WHERE p.reader_id = %s AND p.folder_id = %s AND p.modseq > %s AND m.modseq <= %s"
        f" UNION ALL SELECT 2, uid, modseq, {nulls} FROM {quote(Expunged._meta.db_table)}"
        " WHERE folder_id = %s AND modseq > %s"
    )


@functools.cache
def _changes_sql() -> str:
    quote = connection.ops.quote_name
    flags = ", ".join(quote(c) for c in ("keywords", *FLAG_COLUMNS))
    nulls = ", ".join(["NULL"] * (1 + len(FLAG_COLUMNS)))
    # (kind, uid or HIGHESTMODSEQ, modseq, keywords, flags...): 0 the folder, 1 a message
    # changed after `modseq`, 2 a tombstone after `expunge_modseq`.
    return (
        f"SELECT 0, highestmodseq, 0, {nulls} FROM {quote(Folder._meta.db_table)}"
        " WHERE id = %s"
        f" UNION ALL SELECT 1, uid, modseq, {flags} FROM {quote(Message._meta.db_table)}"
        " WHERE folder_id = %s AND modseq > %s"
        f" UNION ALL SELECT 2, uid, modseq, {nulls} FROM {quote(Expunged._meta.db_table)}"
        " WHERE folder_id = %s AND modseq > %s"
    )


@dataclass(slots=True)
class FetchRow:
    """What IMAP FETCH renders from one message row (the bytes stay in the blob)."""

    id: int
    uid: int
    modseq: int
    flags: list[str]
    size: int = 0
    internal_date: object = None
    blob_name: object = None  # storage name, or the blob id when the name was not asked for
    mime_cache: object = None
    blob_id: int = 0  # with_ids: OBJECTID's EMAILID and THREADID (RFC 8474), SAVEDATE
    thread_key: str = ""
    saved_at: object = None


def _raw_rows(queryset) -> list[tuple]:
    from django.db import connections

    sql, params = queryset.query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


# message_fetch_rows' statements by the columns asked for: (SELECT ... WHERE m.folder_id = %s,
# the converters of the columns that have some). Plain statements (mailhost/plainsql.py):
# every FETCH reads its rows here, and the ORM's query building cost more than the query.
_fetch_statements: dict[tuple[str, ...], tuple[str, list]] = {}


def _fetch_statement(columns: tuple[str, ...]) -> tuple[str, list]:
    found = _fetch_statements.get(columns)
    if found is None:
        quote = connection.ops.quote_name
        fields = [
            (Blob._meta.get_field("name"), "b")
            if name == "blob__name"
            else (Message._meta.get_field(name), "m")
            for name in columns
        ]
        select = ", ".join(f"{alias}.{quote(field.column)}" for field, alias in fields)
        sql = f"SELECT {select} FROM {quote(Message._meta.db_table)} m"
        if "blob__name" in columns:
            sql += f" JOIN {quote(Blob._meta.db_table)} b ON b.id = m.blob_id"
        found = _fetch_statements[columns] = (
            sql + " WHERE m.folder_id = %s",
            converters_of(fields),
        )
    return found


def _converted(rows: list[tuple], converters: list) -> list[tuple]:
    """Rows with the ORM's converters applied (as values_list gives them)."""
    if not converters:
        return rows
    return [tuple(converted(list(row), converters)) for row in rows]


def message_fetch_rows(
    folder: Folder | int,
    uids,
    *,
    changed_since: int | None = None,
    with_cache: bool = False,
    with_blob: bool = True,
    with_details: bool = True,
    with_ids: bool = False,
    reader: int | None = None,
) -> list[FetchRow]:
    """Rows for FETCH, in UID order: one query for a dense range (1:*), chunked for
    scattered UIDs. Only the columns asked for are read (FETCH 1:* (FLAGS) converts no
    dates). With a reader, \\Seen and the MODSEQ are the reader's (one more query, for
    the whole FETCH)."""
    folder_id = folder if isinstance(folder, int) else folder.id
    if reader is not None:
        options = dict(
            with_cache=with_cache, with_blob=with_blob, with_details=with_details, with_ids=with_ids
        )

        def read(wanted, since):
            return message_fetch_rows(folder_id, wanted, changed_since=since, **options)

        return _reader_rows(folder_id, reader, uids, changed_since, read, _seen_fetch_row)
    wanted = sorted(set(uids))
    if not wanted:
        return []
    columns = ["id", "uid", "modseq", "keywords", *FLAG_COLUMNS]
    if with_details:
        columns += ["size", "internal_date"]
    columns.append("blob__name" if with_blob else "blob_id")
    if with_cache:
        columns.append("mime_cache")
    if with_ids:
        columns += ["blob_id", "thread_key", "saved_at"]
    sql, converters = _fetch_statement(tuple(columns))
    params: list = [folder_id]
    if changed_since is not None:
        sql += " AND m.modseq > %s"
        params.append(changed_since)
    if not with_details and not with_cache and not with_ids:
        # Flags only (FETCH 1:* (FLAGS)): without Django's per-value converters, which cost
        # more than the query itself on 100k rows.
        converters = []
    raw_rows = []
    with connection.cursor() as cursor:
        if len(wanted) > 500 and wanted[-1] - wanted[0] < 4 * len(wanted):
            wanted_set = set(wanted) if len(wanted) != wanted[-1] - wanted[0] + 1 else None
            cursor.execute(
                f"{sql} AND m.uid >= %s AND m.uid <= %s ORDER BY m.uid",
                [*params, wanted[0], wanted[-1]],
            )
            rows = _converted(cursor.fetchall(), converters)
            raw_rows = rows if wanted_set is None else [r for r in rows if r[1] in wanted_set]
        else:
            for start in range(0, len(wanted), 2000):
                chunk = wanted[start : start + 2000]
                marks = ", ".join(["%s"] * len(chunk))
                cursor.execute(f"{sql} AND m.uid IN ({marks}) ORDER BY m.uid", [*params, *chunk])
                raw_rows.extend(_converted(cursor.fetchall(), converters))
    flag_lists: dict[tuple, list[str]] = {}
    result = []
    for row in raw_rows:
        key = row[3:9]
        flags = flag_lists.get(key)
        if flags is None:
            flags = flag_lists[key] = names_of_columns(row[3], row[4:9])
        if with_details:
            item = FetchRow(row[0], row[1], row[2], flags, row[9], row[10], row[11])
        else:
            item = FetchRow(row[0], row[1], row[2], flags, blob_name=row[9])
        if with_ids:
            item.blob_id, item.thread_key, item.saved_at = row[-3:]
            row = row[:-3]
        if with_cache:
            item.mime_cache = row[-1]
        result.append(item)
    return result


def _seen_fetch_row(row: FetchRow, private: tuple[bool, int] | None) -> FetchRow:
    seen, modseq = private if private is not None else (False, 0)
    others = [f for f in row.flags if f != "\\Seen"]
    row.flags = ["\\Seen", *others] if seen else others  # \\Seen is first (mailboxes/flags.py)
    row.modseq = max(row.modseq, modseq)
    return row


def blob_read_many(keys) -> dict[object, bytes]:
    """Raw bytes of several blobs by storage name, or by id (the result keyed as asked): one
    open per file, one plain statement per 500 inline names and per 500 ids (the indexer reads
    its batch this way; the ORM's query building cost more than SQLite's answer). A
    blob released since its name or id was read is left out."""
    storage = storages["blobs"]
    out: dict[object, bytes] = {}
    files: dict[object, str] = {}
    inline, ids = [], []
    for key in keys:
        if isinstance(key, int):
            ids.append(key)
        elif Blob.name_is_inline(key):
            inline.append(key)
        else:
            files[key] = key
    table = connection.ops.quote_name(Blob._meta.db_table)
    # On PostgreSQL one prepared statement a column whatever the count (its keys an array),
    # its rows binary: the bytes as they are, not hex text the server writes and libpq decodes.
    postgresql = connection.vendor == "postgresql"
    with connection.prepared_cursor(binary=True) as cursor:
        for column, wanted in (("name", inline), ("id", ids)):
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                if postgresql:
                    keys, params = "= ANY(%s)", [chunk]
                else:
                    keys, params = f"IN ({', '.join(['%s'] * len(chunk))})", chunk
                cursor.execute(
                    f"SELECT {column}, name, data FROM {table} WHERE {column} {keys}", params
                )
                for key, name, data in cursor.fetchall():
                    if data is not None:
                        out[key] = bytes(data)
                    elif not Blob.name_is_inline(name):
                        files[key] = name
    for key, name in files.items():
        try:
            if hasattr(storage, "read_range"):  # object storage: one GET
                out[key] = storage.read_range(name, 0)
                continue
            with storage.open(name, "rb") as fh:
                out[key] = fh.read()
        except FileNotFoundError:
            continue  # released by an expunge since the row was read: the caller skips it
    return out


def folder_keywords(folder_id: int) -> list[str]:
    """Every keyword used in a folder (IMAP FLAGS response): read from the partial index
    message_folder_keywords, whose condition the query repeats word for word (SQLite uses
    a partial index only for a WHERE it can see implies the index's)."""
    table = connection.ops.quote_name(Message._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT keywords FROM {table} WHERE folder_id = %s AND NOT (keywords = '')",
            [folder_id],
        )
        texts = [row[0] for row in cursor.fetchall()]
    return sorted({k for text in texts for k in text.split()})


def folder_highestmodseq(folder_id: int) -> int | None:
    return Folder.objects.filter(pk=folder_id).values_list("highestmodseq", flat=True).first()


def destinations_undeliverable(destinations: Iterable[str]) -> list[str]:
    """The destinations in our own domains that no mailbox, alias or catch-all takes (yet):
    mail an alias sends there bounces until one is made."""
    cache: dict[str, Domain | None] = {}
    return [
        d
        for d in destinations
        if (resolution := recipient_resolve(d, domain_cache=cache)).hosted and not resolution.exists
    ]


def folder_message_fingerprints(folder: Folder | int) -> set[tuple[str, int, int]]:
    """(Message-ID, internal date in whole seconds, size) of every message in the folder:
    how importmailbox knows a message it already brought in."""
    rows = messages_in(folder).values_list("message_id", "internal_date", "size")
    return {(mid, int(date.timestamp()), size) for mid, date, size in rows}


def message_fingerprint(header: bytes, internal_date: datetime, size: int) -> tuple[str, int, int]:
    """A message's entry of folder_message_fingerprints, from its header (the whole message
    or just its Message-ID field), internal date and size."""
    return headers.summarize(header)["message_id"], int(internal_date.timestamp()), size


def store_problems() -> Iterable[str]:
    """One line per fault in the store (verifystore): a blob whose bytes are missing or not
    its recorded size (a file, or inline in its row), a message whose size is not its blob's."""
    storage = storages["blobs"]
    blobs = (
        Blob.objects.annotate(inline_size=Length("data"))
        .order_by("id")
        .values_list("id", "name", "size", "inline_size")
    )
    for blob_id, name, size, inline_size in blobs.iterator(chunk_size=2000):
        if Blob.name_is_inline(name):
            found = inline_size
        else:
            try:
                found = storage.size(name)
            except (FileNotFoundError, OSError):
                found = None
        if found is None:
            yield f"blob {blob_id} {name}: missing (size {size})"
        elif found != size:
            yield f"blob {blob_id} {name}: size {found}, expected {size}"
    mismatched = (
        Message.objects.exclude(size=F("blob__size"))
        .order_by("id")
        .values_list("id", "folder__mailbox_id", "folder__name", "uid", "size", "blob__size")
    )
    for message_id, mailbox_id, folder, uid, size, blob_size in mismatched.iterator():
        yield (
            f"message {message_id} (mailbox {mailbox_id} folder {folder!r} uid {uid}):"
            f" size {size}, its blob holds {blob_size}"
        )


# --- Sieve scripts --------------------------------------------------------------------------


def sievescript_active(mailbox_id: int) -> SieveScript | None:
    """The mailbox's active Sieve script, run by the MDA after the domain's default."""
    return SieveScript.objects.filter(mailbox_id=mailbox_id, active=True).first()


def sievescripts_of(mailbox: Mailbox | int) -> list[SieveScript]:
    return list(SieveScript.objects.filter(mailbox=mailbox).order_by("name"))


def sievescript_get(mailbox: Mailbox | int, name: str) -> SieveScript | None:
    return SieveScript.objects.filter(mailbox=mailbox, name=name).first()


def domain_sieve_default(domain_id: int) -> str:
    """The domain's default script (run before each mailbox's own), "" when none."""
    text = Domain.objects.filter(pk=domain_id).values_list("sieve_default", flat=True).first()
    return text or ""


# --- access control lists and shared folders (RFC 4314, RFC 2342) ----------------------


@dataclass(frozen=True)
class FolderAccess:
    """A folder as one mailbox may reach it: its own, or another's shared with it."""

    folder: Folder
    rights: str  # RFC 4314 rights, in ACL_RIGHTS order
    prefix: str = ""  # "" for the viewer's own folder, else "Other Users/<address>/"
    viewer_id: int = 0

    @property
    def reader(self) -> int | None:
        """The viewer when it reads another's folder (its \\Seen is its own: PrivateSeen),
        else None."""
        return self.viewer_id if self.prefix else None

    @property
    def name(self) -> str:
        """The name the viewer knows the folder by."""
        return self.prefix + self.folder.name

    @property
    def shared(self) -> bool:
        return bool(self.prefix)


def shared_name_split(name: str) -> tuple[str, str, str] | None:
    """(namespace, owner address, folder name) of a name in a shared namespace, or None."""
    for namespace in (OTHER_USERS_NAMESPACE, SHARED_NAMESPACE):
        if name.startswith(namespace + HIERARCHY_DELIMITER):
            rest = name[len(namespace) + 1 :]
            address, _, folder = rest.partition(HIERARCHY_DELIMITER)
            return namespace, address, folder
    return None


def _rights_union(*rights: str) -> str:
    held = set("".join(rights))
    return "".join(c for c in ACL_RIGHTS if c in held)


def folder_rights(folder: Folder, viewer_id: int) -> str:
    """What the viewer may do with the folder: every right for its owner, else the union of
    the entries naming the viewer and "anyone" of the owner's domain (RFC 4314 2)."""
    if folder.mailbox_id == viewer_id:
        return ACL_RIGHTS
    entries = FolderAcl.objects.filter(folder_id=folder.id)
    rows = list(entries.filter(grantee_id=viewer_id).values_list("rights", flat=True))
    anyone = entries.filter(grantee__isnull=True).values_list("rights", flat=True).first()
    if anyone and (
        Mailbox.objects.filter(pk=viewer_id).values_list("domain_id", flat=True).first()
        == Mailbox.objects.filter(pk=folder.mailbox_id).values_list("domain_id", flat=True).first()
    ):
        rows.append(anyone)
    return _rights_union(*rows)


def shared_owner(viewer_id: int, name: str) -> tuple[Mailbox, str, str] | None:
    """(owner mailbox, folder name in the owner's mailbox, prefix) of a name in a shared
    namespace; None when the name is not in one or names no other mailbox."""
    split = shared_name_split(name)
    if split is None:
        return None
    namespace, address, folder_name = split
    owner = mailbox_get(address)
    if owner is None or owner.id == viewer_id:
        return None
    prefix = f"{namespace}{HIERARCHY_DELIMITER}{address}{HIERARCHY_DELIMITER}"
    return owner, folder_name, prefix


def folder_access(viewer_id: int, name: str) -> FolderAccess | None:
    """The folder a name means to this mailbox, with the viewer's rights; None when there is
    none, or it is another's the viewer holds no right on (RFC 4314 6: not told it exists)."""
    owned = shared_owner(viewer_id, name)
    if owned is None:
        if shared_name_split(name) is not None:
            return None
        folder = folder_get(viewer_id, name)
        return FolderAccess(folder, ACL_RIGHTS) if folder is not None else None
    owner, folder_name, prefix = owned
    folder = folder_get(owner.id, folder_name) if folder_name else None
    if folder is None:
        return None
    rights = folder_rights(folder, viewer_id)
    if not rights:
        return None
    reader_view(folder, viewer_id)
    return FolderAccess(folder, rights, prefix, viewer_id)


def reader_view(folder: Folder, reader: int) -> Folder:
    """The folder row as a reader of it sees it: its unseen count is the reader's (the
    messages without the reader's own \\Seen), for STATUS and SELECT."""
    folder.unseen_count = max(0, folder.message_count - private_seen_count(folder, reader))
    return folder


def shared_folders(viewer_id: int) -> list[FolderAccess]:
    """Other mailboxes' folders this one may see (the "l" right), under the namespace each
    is shared in: "Other Users" when shared with the viewer, "Shared" when only with the
    domain."""
    # One plain statement (mailhost/plainsql.py): every LIST asks, and the ORM's two queries
    # cost more to build than to run.
    folders, mailboxes, domains = _FOLDER_COLUMNS, _MAILBOX_COLUMNS, _DOMAIN
    q = connection.ops.quote_name
    sql = (
        f"SELECT a.grantee_id, a.rights, {folders.sql}, {mailboxes.sql}, {domains.sql} "
        f"FROM {q(FolderAcl._meta.db_table)} a JOIN {folders.table} ON f.id = a.folder_id "
        f"JOIN {mailboxes.table} ON m.id = f.mailbox_id JOIN {domains.table} ON d.id = m.domain_id "
        "WHERE (a.grantee_id = %s OR (a.grantee_id IS NULL AND m.domain_id = "
        f"(SELECT v.domain_id FROM {q(Mailbox._meta.db_table)} v WHERE v.id = %s))) "
        "AND f.mailbox_id <> %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [viewer_id, viewer_id, viewer_id])
        rows = cursor.fetchall()
    by_folder: dict[int, tuple[Folder, list[str], bool]] = {}
    at_mailbox = 2 + len(folders)
    for row in rows:
        grantee_id, entry_rights, folder_id = row[0], row[1], row[2]
        found = by_folder.get(folder_id)
        if found is None:
            folder = folders.instance(row, 2)
            folder.mailbox = mailboxes.instance(row, at_mailbox)
            folder.mailbox.domain = domains.instance(row, at_mailbox + len(mailboxes))
            found = (folder, [], False)
        folder, rights, personal = found
        rights.append(entry_rights)
        by_folder[folder_id] = (folder, rights, personal or grantee_id is not None)
    result = []
    for folder, rights, personal in by_folder.values():
        held = _rights_union(*rights)
        if "l" not in held:
            continue
        namespace = OTHER_USERS_NAMESPACE if personal else SHARED_NAMESPACE
        owner = folder.mailbox.address
        prefix = f"{namespace}{HIERARCHY_DELIMITER}{owner}{HIERARCHY_DELIMITER}"
        result.append(FolderAccess(folder, held, prefix, viewer_id))
    return sorted(result, key=lambda access: access.name)


def folder_acl(folder: Folder) -> list[tuple[str, str]]:
    """(identifier, rights) of the folder's ACL, the owner first (RFC 4314 3.3)."""
    owner = Mailbox.objects.select_related("domain").get(pk=folder.mailbox_id)
    result = [(owner.address, ACL_RIGHTS)]
    entries = FolderAcl.objects.filter(folder_id=folder.id).select_related("grantee__domain")
    for entry in sorted(entries, key=lambda e: (e.grantee is not None, str(e.grantee or ""))):
        identifier = entry.grantee.address if entry.grantee is not None else "anyone"
        result.append((identifier, entry.rights))
    return result


def folder_readers(folder_id: int) -> list[int]:
    """Mailboxes other than the owner that may hold the folder selected (IDLE, NOTIFY)."""
    return list(
        FolderAcl.objects.filter(folder_id=folder_id, grantee__isnull=False).values_list(
            "grantee_id", flat=True
        )
    )


# --- metadata (RFC 5464) ----------------------------------------------------------------


def _metadata_builtin(folder: Folder | None) -> dict[str, bytes]:
    """Entries the server keeps itself: the server's /shared/admin (RFC 5464 6.2.1), and a
    folder's special use as /private/specialuse (RFC 6154 6)."""
    if folder is None:
        return {"/shared/admin": f"mailto:postmaster@{settings.MAILHOST_HOSTNAME}".encode()}
    if folder.special_use:
        return {"/private/specialuse": folder.special_use.encode()}
    return {}


def metadata_entries(viewer_id: int, folder: Folder | None) -> dict[str, bytes]:
    """Every entry the viewer sees on a folder (None: the server): its own /private/ ones
    and the /shared/ ones of the folder's owner."""
    entries = _metadata_builtin(folder)
    if folder is None:
        rows = MetadataEntry.objects.filter(mailbox_id=viewer_id, folder__isnull=True)
    else:
        rows = MetadataEntry.objects.filter(folder_id=folder.id).filter(
            Q(mailbox_id=viewer_id, name__startswith="/private/")
            | Q(mailbox_id=folder.mailbox_id, name__startswith="/shared/")
        )
    for name, value in rows.values_list("name", "value"):
        entries[name] = bytes(value)
    return entries


def metadata_get(
    viewer_id: int, folder: Folder | None, names: Sequence[str], depth: int | None = 0
) -> list[tuple[str, bytes]]:
    """The entries named, and with `depth` 1 their children, None all descendants (RFC 5464
    4.2.2), in name order; an entry with no value is left out."""
    entries = metadata_entries(viewer_id, folder)
    found: dict[str, bytes] = {}
    for wanted in names:
        for name, value in entries.items():
            if name == wanted:
                found[name] = value
            elif depth != 0 and name.startswith(wanted + "/"):
                rest = name[len(wanted) + 1 :]
                if depth is None or "/" not in rest:
                    found[name] = value
    return sorted(found.items())


def metadata_count(mailbox_id: int) -> int:
    return MetadataEntry.objects.filter(mailbox_id=mailbox_id).count()


def folders_by_id(folder_ids: Sequence[int]) -> dict[int, Folder]:
    """Folder rows by id (NOTIFY's STATUS of folders not selected)."""
    if not folder_ids:
        return {}
    return {f.id: f for f in Folder.objects.filter(pk__in=list(folder_ids))}


def web_sessions(*, mailbox: Mailbox) -> list[WebSession]:
    """The mailbox's signed-in web sessions, the most recently seen first."""
    return list(WebSession.objects.filter(mailbox=mailbox).order_by("-last_seen_at"))


def app_passwords(*, mailbox: Mailbox) -> list[AppPassword]:
    return list(AppPassword.objects.filter(mailbox=mailbox).order_by("name", "created_at"))


def recovery_codes_left(*, mailbox: Mailbox) -> int:
    return RecoveryCode.objects.filter(mailbox=mailbox, used_at__isnull=True).count()


def passkeys(*, mailbox: Mailbox) -> list[Passkey]:
    return list(Passkey.objects.filter(mailbox=mailbox).order_by("created_at"))


# --- Webmail reads (webmail/views) -------------------------------------------------------


def folder_of(mailbox: Mailbox | int, folder_id: int) -> Folder | None:
    """A mailbox's folder by id; None when there is none or it is another mailbox's."""
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    return Folder.objects.filter(pk=folder_id, mailbox_id=mailbox_id).first()


def message_get(folder: Folder | int, uid: int) -> Message | None:
    """A message by folder and UID, with its blob and folder rows."""
    return Message.objects.select_related("blob", "folder").filter(folder=folder, uid=uid).first()


def message_of(mailbox: Mailbox | int, folder_id: int, uid: int) -> Message | None:
    """A message of the mailbox's own by folder id and UID, with its blob and folder rows;
    None when there is none or its folder is another mailbox's."""
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    return (
        Message.objects.select_related("blob", "folder")
        .filter(folder_id=folder_id, folder__mailbox_id=mailbox_id, uid=uid)
        .first()
    )


def message_is_draft(folder: Folder | int, uid: int) -> bool:
    """Whether the folder holds a message with this UID flagged \\Draft."""
    return Message.objects.filter(folder=folder, uid=uid, draft=True).exists()


def folder_uids(folder: Folder | int) -> list[int]:
    """Every UID of a folder's messages, ascending."""
    return list(Message.objects.filter(folder=folder).order_by("uid").values_list("uid", flat=True))


def messages_count(folder: Folder | int, uids: Iterable[int]) -> int:
    """How many of these UIDs the folder holds."""
    return Message.objects.filter(folder=folder, uid__in=uids).count()


def messages_senders(folder: Folder | int, uids: Iterable[int]) -> list[str]:
    """The From addresses of these messages, each once, sorted (messages without one left
    out)."""
    senders = (
        Message.objects.filter(folder=folder, uid__in=uids)
        .exclude(from_address="")
        .values_list("from_address", flat=True)
    )
    return sorted(set(senders))


def _conversation_heads(folder_id: int) -> QuerySet[Message]:
    """The folder's messages that are the newest of their conversation in it (thread_key;
    a message without one is a conversation of its own), by the mark the database keeps
    (Message.conversation_head), read in UID order from the partial index of those rows:
    a page of them costs its own rows, whatever the conversations' sizes."""
    return Message.objects.filter(folder_id=folder_id, conversation_head=True)


def conversation_list_page(
    folder: Folder, *, before: int | None, after: int | None, size: int, fields: Sequence[str]
) -> tuple[list[Message], bool, bool]:
    """One page of a folder's conversations, newest first, as the newest message of each
    (its place in the list): the `size` below UID `before`, or above UID `after`, or the
    newest. Returns (messages, has_newer, has_older). Keyset pages, no OFFSET: a range of
    the (folder, uid) index of conversations' newest messages from the cursor."""
    qs = _conversation_heads(folder.pk).only(*fields)
    if after is not None:
        chunk = list(qs.filter(uid__gt=after).order_by("uid")[: size + 1])
        has_newer = len(chunk) > size
        page = list(reversed(chunk[:size]))
        has_older = bool(page) and qs.filter(uid__lt=page[-1].uid).exists()
        return page, has_newer, has_older
    qs_page = qs.filter(uid__lt=before) if before is not None else qs
    chunk = list(qs_page.order_by("-uid")[: size + 1])
    has_older = len(chunk) > size
    page = chunk[:size]
    has_newer = before is not None and bool(page) and qs.filter(uid__gt=page[0].uid).exists()
    return page, has_newer, has_older


@dataclass(frozen=True)
class ConversationSummary:
    """A conversation's messages in one folder: how many, and whether any is unread, flagged
    or has attachments."""

    count: int
    unseen: bool
    flagged: bool
    attachments: bool


def folder_conversations(
    folder: Folder | int, thread_keys: Iterable[str]
) -> dict[str, ConversationSummary]:
    """For each thread key, a summary of its conversation's messages in the folder: its
    Conversation row, counts the database keeps on every write, one primary-key probe per key
    (summing the messages was O(each conversation): 17 ms of CPU for one of 100k on SQLite)."""
    folder_id = folder if isinstance(folder, int) else folder.pk
    keys = {k for k in thread_keys if k}
    if not keys:
        return {}
    rows = Conversation.objects.filter(folder_id=folder_id, thread_key__in=keys).values_list(
        "thread_key", "messages", "unseen", "flagged", "attachments"
    )
    return {
        key: ConversationSummary(
            count=count, unseen=unseen > 0, flagged=flagged > 0, attachments=attachments > 0
        )
        for key, count, unseen, flagged, attachments in rows
    }


def conversations_uids(folder: Folder | int, newest_uids: Iterable[int]) -> list[int]:
    """The UIDs, ascending, of the folder's conversations that these messages head: each
    message's own and those of the folder's messages of its thread_key with a lower UID (what
    the list showed as that conversation, and nothing that arrived after it). A message gone
    from the folder contributes nothing. Two statements, whatever the conversations' sizes."""
    folder_id = folder if isinstance(folder, int) else folder.pk
    heads = Message.objects.filter(folder_id=folder_id, uid__in=set(newest_uids))
    wanted = Q()
    for uid, thread_key in heads.order_by().values_list("uid", "thread_key"):
        wanted |= Q(thread_key=thread_key, uid__lte=uid) if thread_key else Q(uid=uid)
    if not wanted:
        return []
    return list(
        Message.objects.filter(wanted, folder_id=folder_id)
        .order_by("uid")
        .values_list("uid", flat=True)
    )


def conversation_of(message: Message, mailbox: Mailbox | int, *, limit: int) -> list[Message]:
    """The messages of a message's conversation (thread_key) across its mailbox's folders,
    Trash left out, oldest first, at most `limit`, with their folder and blob rows; the
    message alone when it has no conversation."""
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    if not message.thread_key:
        return [message]
    return list(
        Message.objects.filter(folder__mailbox_id=mailbox_id, thread_key=message.thread_key)
        .exclude(folder__special_use=SpecialUse.TRASH)
        .select_related("folder", "blob")
        .order_by("internal_date", "id")[:limit]
    ) or [message]


def correspondents_recent(mailbox: Mailbox | int, *, limit: int) -> list[tuple[str, str, str]]:
    """(From, To, Cc) display texts of the mailbox's newest `limit` messages (by row id,
    every folder): the webmail's address suggestions."""
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    return list(
        Message.objects.filter(folder__mailbox_id=mailbox_id)
        .order_by("-id")
        .values_list("from_display", "to_display", "cc_display")[:limit]
    )


def contacts_of(mailbox: Mailbox | int) -> QuerySet[Contact]:
    """The mailbox's address book, by name."""
    return Contact.objects.filter(mailbox=mailbox).order_by("name", "uid")


def contacts_matching(mailbox: Mailbox | int, text: str, *, limit: int) -> list[Contact]:
    """At most `limit` contacts whose name or addresses contain `text` (without regard to
    case)."""
    matching = Contact.objects.filter(mailbox=mailbox).filter(
        Q(name__icontains=text) | Q(emails__icontains=text)
    )
    return list(matching[:limit])


def contact_by_id(mailbox: Mailbox | int, contact_id: int) -> Contact | None:
    """A card of the mailbox's address book by its row id (the webmail's links)."""
    return Contact.objects.filter(mailbox=mailbox, pk=contact_id).first()


def contact_get(mailbox: Mailbox | int, uid: str) -> Contact | None:
    """A card of the mailbox's address book by its UID."""
    return Contact.objects.filter(mailbox=mailbox, uid=uid).first()


def contacts_by_uid(mailbox: Mailbox | int) -> QuerySet[Contact]:
    """The mailbox's address book in UID order (CardDAV listings)."""
    return Contact.objects.filter(mailbox=mailbox).order_by("uid")


def contacts_changed_since(mailbox: Mailbox | int, modseq: int) -> QuerySet[Contact]:
    """The cards written after MODSEQ `modseq`, in MODSEQ order (CardDAV sync, RFC 6578)."""
    return Contact.objects.filter(mailbox=mailbox, modseq__gt=modseq).order_by("modseq")


def contacts_deleted_since(mailbox: Mailbox | int, modseq: int) -> list[str]:
    """The UIDs of the cards deleted after MODSEQ `modseq` (their tombstones)."""
    return list(
        ContactDeleted.objects.filter(mailbox=mailbox, modseq__gt=modseq).values_list(
            "uid", flat=True
        )
    )


def contacts_highest_modseq(mailbox: Mailbox | int) -> int:
    """The address book's last change, written or deleted: its CardDAV sync token."""
    return max(
        Contact.objects.filter(mailbox=mailbox).aggregate(m=Max("modseq"))["m"] or 0,
        ContactDeleted.objects.filter(mailbox=mailbox).aggregate(m=Max("modseq"))["m"] or 0,
    )


def mailbox_signed_in(mailbox_id: object, *, session_key: str | None = None) -> Mailbox | None:
    """The active mailbox (of an active domain, its domain row read with it) a web session
    names by id; with `session_key`, only while that session's row exists (a session signed
    out from Settings > Sessions has none)."""
    mailboxes = Mailbox.objects.select_related("domain").filter(
        pk=mailbox_id, active=True, domain__active=True
    )
    if session_key is not None:
        mailboxes = mailboxes.filter(web_sessions__session_key=session_key)
    return mailboxes.first()
