"""Writes to the mail store. Each function is one transaction and the only way to make the
change it names; SMTP, IMAP, POP3, the webmail, the admin and the commands all call these.

Durability: blob bytes are written and synced before the rows that point at them commit, so
a reply given after a service returns (SMTP 250, IMAP OK) is never a lie. A crash between the
two leaves an orphan file that `blob_collect_garbage` removes; never a row without its bytes.
Small messages (MAILHOST_BLOB_INLINE_MAX) are stored in their Blob row instead, in the same
transaction as the rows that point at it: one commit makes bytes and rows durable together.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.hashers import check_password, get_hasher, make_password
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    IntegrityError,
    connection,
    connections,
    transaction,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Exists, F, ForeignKey, OuterRef
from django.utils import timezone

from mailboxes import events, groupcommit, headers, quotas, senderlists, throttle
from mailboxes.addresses import domain_to_ascii, parse_address
from mailboxes.events import ChangeEvent
from mailboxes.exceptions import (
    AlreadyExists,
    AppPasswordRequired,
    FolderError,
    InvalidAddress,
    InvalidValue,
    KeywordLimit,
    NoPermission,
    NotFound,
    QuotaExceeded,
    SieveQuotaExceeded,
    SieveScriptActive,
    SieveScriptInvalid,
)
from mailboxes.flags import COLUMNS as FLAG_COLUMNS
from mailboxes.flags import (
    Flags,
    SystemFlag,
    bits_of,
    column_values,
    names_of_bits,
    names_of_columns,
    system_flag,
)
from mailboxes.mda import Filing, MailboxPlan
from mailboxes.models import (
    ACL_OBSOLETE_RIGHTS,
    ACL_RIGHTS,
    DEFAULT_FOLDERS,
    HIERARCHY_DELIMITER,
    AdminTOTP,
    Alias,
    AppPassword,
    Blob,
    BlobText,
    BlobTextPending,
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
from mailboxes.outbound import outbound
from mailboxes.outcomes import Outcome
from mailboxes.selectors import (
    Resolution,
    folder_keywords,
    message_flag_rows,
    private_seen_map,
    recipient_resolve,
)
from mailboxes.transactions import sync_this_transaction, unsynced_atomic
from mailhost.plainsql import Columns, Insert

logger = logging.getLogger(__name__)


# --- Domains, mailboxes, aliases ---------------------------------------------------------


def domain_create(*, name: str, active: bool = True) -> Domain:
    ascii_name = domain_to_ascii(name)
    if Domain.objects.filter(name=ascii_name).exists():
        raise AlreadyExists(f"domain {ascii_name} exists")
    key = generate_dkim_key()
    try:
        with transaction.atomic():
            domain = Domain.objects.create(name=ascii_name, active=active)
            DkimKey.objects.create(
                domain=domain,
                selector=DKIM_FIRST_SELECTOR,
                private_key=key,
                state=DkimKey.State.ACTIVE,
                activated_at=timezone.now(),
            )
            return domain
    except IntegrityError:  # created concurrently since the check
        raise AlreadyExists(f"domain {ascii_name} exists") from None


DKIM_FIRST_SELECTOR = "mailhost"
DKIM_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # one DNS label


def generate_dkim_key() -> str:
    """A 2048-bit RSA key, PEM (RFC 8301 3.2: at least 1024 bits, 2048 recommended)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode("ascii")


def generate_dkim_ed25519_key() -> str:
    """An Ed25519 key (RFC 8463), PEM (PKCS #8)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode("ascii")
    )


def dkim_key_create(
    *,
    domain: Domain,
    algorithm: str = DkimKey.Algorithm.RSA,
    selector: str | None = None,
    active: bool = False,
) -> DkimKey:
    """A new key for `domain`, PUBLISHED (listed by dnsrecords, not signing) unless `active`.

    The selector defaults to `mhYYYYMMDD` (with `-2`, `-3`... when taken that day), so that a
    key's age shows in the records. Raises InvalidValue (a bad selector), AlreadyExists."""
    if algorithm not in DkimKey.Algorithm.values:
        raise InvalidValue(f"unknown DKIM algorithm {algorithm!r} (rsa or ed25519)")
    if selector is not None:
        selector = selector.lower()
        if not DKIM_SELECTOR.fullmatch(selector):
            raise InvalidValue(f"DKIM selector {selector!r} is not a DNS label")
    generate = (
        generate_dkim_key if algorithm == DkimKey.Algorithm.RSA else generate_dkim_ed25519_key
    )
    private_key = generate()
    with transaction.atomic():
        taken = set(domain.dkim_keys.values_list("selector", flat=True))
        if selector is None:
            base = f"mh{timezone.now():%Y%m%d}"
            selector = base
            n = 1
            while selector in taken:
                n += 1
                selector = f"{base}-{n}"
        elif selector in taken:
            raise AlreadyExists(f"{domain.name} has a DKIM key with selector {selector}")
        if active:
            domain.dkim_keys.filter(state=DkimKey.State.ACTIVE).update(
                state=DkimKey.State.PUBLISHED
            )
        return DkimKey.objects.create(
            domain=domain,
            selector=selector,
            algorithm=algorithm,
            private_key=private_key,
            state=DkimKey.State.ACTIVE if active else DkimKey.State.PUBLISHED,
            activated_at=timezone.now() if active else None,
        )


def _dkim_key_locked(domain: Domain, selector: str) -> DkimKey:
    key = domain.dkim_keys.select_for_update().filter(selector=selector.lower()).first()
    if key is None:
        raise NotFound(f"{domain.name} has no DKIM key with selector {selector}")
    return key


@transaction.atomic
def dkim_key_activate(*, domain: Domain, selector: str) -> DkimKey:
    """Sign the domain's mail with this key from now on; the key that signed until now stays
    PUBLISHED (mail it signed is still in flight and verified against DNS: RFC 6376 3.6.1).
    Its record must be in DNS already, or receivers fail the new signatures."""
    key = _dkim_key_locked(domain, selector)
    if key.state == DkimKey.State.RETIRED:
        raise InvalidValue(f"{key.selector} of {domain.name} is retired; create a new key")
    if key.state == DkimKey.State.ACTIVE:
        return key
    # The old key leaves ACTIVE first: at most one active key per domain (a constraint).
    domain.dkim_keys.filter(state=DkimKey.State.ACTIVE).update(state=DkimKey.State.PUBLISHED)
    key.state = DkimKey.State.ACTIVE
    key.activated_at = timezone.now()
    key.save(update_fields=["state", "activated_at"])
    return key


@transaction.atomic
def dkim_key_retire(*, domain: Domain, selector: str) -> DkimKey:
    """Leave the key's record out of the records to publish and erase its private key. The
    active key cannot be retired: activate another first (mail would leave unsigned)."""
    key = _dkim_key_locked(domain, selector)
    if key.state == DkimKey.State.ACTIVE:
        raise InvalidValue(
            f"{key.selector} signs {domain.name}'s mail; activate another key before retiring it"
        )
    key.state = DkimKey.State.RETIRED
    key.private_key = ""
    key.save(update_fields=["state", "private_key"])
    return key


@transaction.atomic
def mailbox_create(
    *,
    address: str,
    password: str,
    quota: int | None = None,
    quota_messages: int | None = None,
    display_name: str = "",
    active: bool = True,
    check_password_strength: bool = False,
) -> Mailbox:
    """Create a mailbox and its folders. `quota` (octets) and `quota_messages` (messages in
    all folders) default to MAILHOST_DEFAULT_QUOTA and MAILHOST_DEFAULT_QUOTA_MESSAGES; 0 is
    no limit. `check_password_strength`: the password must pass AUTH_PASSWORD_VALIDATORS (the
    admin and addmailbox ask; tests and imports need not)."""
    parsed = parse_address(address)
    if not password:
        raise InvalidValue("a mailbox needs a password")
    if quota is not None and quota < 0:
        raise InvalidValue("quota must not be negative")
    if quota_messages is not None and quota_messages < 0:
        raise InvalidValue("message quota must not be negative")
    if quota_messages is None:
        quota_messages = settings.MAILHOST_DEFAULT_QUOTA_MESSAGES
    domain = Domain.objects.filter(name=parsed.domain).first()
    if domain is None:
        raise NotFound(f"domain {parsed.domain} is not hosted here")
    local_key = domain.local_key(parsed.local_part)
    if Mailbox.objects.filter(domain=domain, local_key=local_key).exists():
        raise AlreadyExists(f"mailbox {parsed} exists")
    if Alias.objects.filter(domain=domain, local_key=local_key).exists():
        raise AlreadyExists(f"{parsed} is an alias")
    if check_password_strength:
        password_check_strength(password)
    try:
        with transaction.atomic():
            mailbox = Mailbox.objects.create(
                domain=domain,
                local_part=parsed.local_part,
                local_key=local_key,
                password=make_password(password),
                quota=settings.MAILHOST_DEFAULT_QUOTA if quota is None else quota,
                quota_messages=quota_messages,
                display_name=display_name,
                active=active,
            )
    except IntegrityError:  # created concurrently since the check
        raise AlreadyExists(f"mailbox {parsed} exists") from None
    for name, special_use in DEFAULT_FOLDERS:
        _folder_insert(mailbox, name, special_use)
    Subscription.objects.bulk_create(
        [Subscription(mailbox=mailbox, name=name) for name, _ in DEFAULT_FOLDERS]
    )
    return mailbox


def password_check_strength(password: str) -> None:
    """AUTH_PASSWORD_VALIDATORS (length, common passwords, all digits): InvalidValue with the
    validators' messages in one sentence."""
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    try:
        validate_password(password)
    except ValidationError as exc:
        raise InvalidValue(" ".join(exc.messages)) from None


def mailbox_set_password(
    *, mailbox: Mailbox, password: str, check_password_strength: bool = False
) -> None:
    if not password:
        raise InvalidValue("a mailbox needs a password")
    if check_password_strength:
        password_check_strength(password)
    mailbox.password = make_password(password)
    mailbox.save(update_fields=["password"])
    _auth_cache_forget(mailbox.id)


@transaction.atomic
def mailbox_update(
    *, mailbox: Mailbox, display_name: str, quota: int, quota_messages: int, active: bool
) -> None:
    """The administrator's settings of a mailbox (the admin's change form). Only these
    columns are written: a save of the whole row would put back the usage counters it read,
    over deliveries committed since."""
    if quota < 0 or quota_messages < 0:
        raise InvalidValue("quota must not be negative")
    mailbox.display_name = display_name
    mailbox.quota = quota
    mailbox.quota_messages = quota_messages
    mailbox.active = active
    mailbox.save(update_fields=["display_name", "quota", "quota_messages", "active"])
    _auth_cache_forget(mailbox.id)


def alias_create(*, address: str, destinations: Sequence[str], active: bool = True) -> Alias:
    """Create an alias; `*@domain` or `@domain` makes the domain's catch-all."""
    text = address.strip()
    if text.startswith("@") or text.startswith("*@"):
        local_part, domain_name = "", text.split("@", 1)[1]
        domain_ascii = domain_to_ascii(domain_name)
    else:
        parsed = parse_address(text)
        local_part, domain_ascii = parsed.local_part, parsed.domain
    if isinstance(destinations, str):
        destinations = destinations.replace(",", " ").split()
    cleaned = list(dict.fromkeys(str(parse_address(d)) for d in destinations))
    if not cleaned:
        raise InvalidAddress("an alias needs at least one destination")
    with transaction.atomic():
        domain = Domain.objects.filter(name=domain_ascii).first()
        if domain is None:
            raise NotFound(f"domain {domain_ascii} is not hosted here")
        local_key = domain.local_key(local_part)
        if Alias.objects.filter(domain=domain, local_key=local_key).exists():
            raise AlreadyExists(f"alias {address} exists")
        if local_key and Mailbox.objects.filter(domain=domain, local_key=local_key).exists():
            raise AlreadyExists(f"{address} is a mailbox")
        try:
            with transaction.atomic():
                return Alias.objects.create(
                    domain=domain,
                    local_part=local_part,
                    local_key=local_key,
                    destinations="\n".join(cleaned),
                    active=active,
                )
        except IntegrityError:  # created concurrently since the check
            raise AlreadyExists(f"alias {address} exists") from None


# --- Allow and block lists of senders ------------------------------------------------------


def _sender_list_owner(mailbox: Mailbox | None, domain: Domain | None) -> dict:
    if (mailbox is None) == (domain is None):
        raise InvalidValue("a sender list belongs to one mailbox or one domain")
    return {"mailbox": mailbox} if mailbox is not None else {"domain": domain}


def sender_list_add(
    *,
    pattern: str,
    action: str,
    mailbox: Mailbox | None = None,
    domain: Domain | None = None,
) -> SenderListEntry:
    """Put a sender pattern on a mailbox's or a domain's list (mailboxes.senderlists gives the
    syntax) as "allow" or "block"; a pattern already there takes the new action (trusting a
    blocked sender moves it, it does not add a second entry). Raises InvalidValue."""
    owner = _sender_list_owner(mailbox, domain)
    if action not in SenderListEntry.Action.values:
        raise InvalidValue(f"unknown action {action!r}: allow or block")
    normalized = senderlists.pattern_normalize(pattern)
    for _attempt in range(2):
        try:
            with transaction.atomic():
                entry, _ = SenderListEntry.objects.update_or_create(
                    **owner, pattern=normalized, defaults={"action": action}
                )
                break
        except IntegrityError:  # created concurrently: the second round updates it
            continue
    else:
        raise AlreadyExists(f"{normalized} is on the list already")
    logger.info(
        "sender_list_add owner=%s pattern=%s action=%s",
        mailbox.ascii_address if mailbox is not None else domain.name,
        normalized,
        action,
    )
    return entry


def sender_list_remove(
    *, entry_id: int, mailbox: Mailbox | None = None, domain: Domain | None = None
) -> bool:
    """Remove one entry of this mailbox's (or domain's) list; False when it is not there."""
    owner = _sender_list_owner(mailbox, domain)
    deleted, _ = SenderListEntry.objects.filter(pk=entry_id, **owner).delete()
    if deleted:
        logger.info(
            "sender_list_remove owner=%s entry=%s",
            mailbox.ascii_address if mailbox is not None else domain.name,
            entry_id,
        )
    return bool(deleted)


# --- Authentication ------------------------------------------------------------------------

# A hash of a password nobody has, checked when the address is unknown so that an unknown
# address costs the same time as a wrong password (no account enumeration by timing).
_dummy_hash: str | None = None
_dummy_hash_lock = threading.Lock()
# Successful checks, by (what, row id): ("mailbox", id) for main passwords, ("app", id) for
# app passwords; each holds the stored hash it was checked against, so a changed or revoked
# password misses at once in every process (each login reads the row again).
_auth_cache: dict[tuple[str, int], tuple[str, bytes, float]] = {}
_auth_cache_lock = threading.Lock()
_auth_cache_key = secrets.token_bytes(32)
# Password checks under way, by (cache key, stored hash, HMAC of the password tried).
_auth_checks: dict[tuple[tuple[str, int], str, bytes], futures.Future] = {}
WEB_PROTOCOL = "webmail"


def mailbox_authenticate(*, address: str, password: str) -> Mailbox | None:
    """The password check under every login (clients log in through mailbox_login, which
    adds the limiter's record and the log line). This is the web's check: the main password
    only (app passwords are for mail clients).

    Inactive mailboxes and mailboxes of inactive domains cannot log in. A successful check is
    remembered in this process for MAILHOST_AUTH_CACHE_SECONDS as an HMAC (never the password),
    as Dovecot's auth cache does, so clients that log in per command stay cheap. Concurrent
    checks of the same password share one hash computation (_password_check).
    """
    return _authenticate(address, password, client=False)[0]


def mailbox_login(
    *, address: str, password: str, client_ip: str | None, protocol: str
) -> Mailbox | None:
    """mailbox_authenticate for a client's login on any protocol: the outcome goes to the
    login limiter (mailboxes/throttle.py; an address that does not exist counts against the
    client's budget for those) and to the log, one `auth success|failure` line. The caller
    has waited what throttle.admit() asked before calling this.

    The web (protocol "webmail") takes the main password only. Mail clients (every other
    protocol) take an app password too, and only an app password once the mailbox has
    two-factor sign-in: then a failure raises AppPasswordRequired (still counted as one),
    so that the client's error tells the user what to do."""
    client = protocol != WEB_PROTOCOL
    mailbox, exists, app_only = _authenticate(address, password, client=client)
    throttle.login_result(
        protocol=protocol,
        user=address,
        client_ip=client_ip,
        succeeded=mailbox is not None,
        user_exists=exists,
    )
    if app_only and mailbox is None:
        raise AppPasswordRequired("two-factor sign-in is on: use an app password")
    return mailbox


def _authenticate(
    address: str, password: str, *, client: bool
) -> tuple[Mailbox | None, bool, bool]:
    """The mailbox the password opens (or None), whether the address names a mailbox, and
    whether only app passwords are taken (a mail client's login to a two-factor mailbox)."""
    from mailboxes.selectors import mailbox_get

    mailbox = mailbox_get(address, active_only=False) if password is not None else None
    if mailbox is None or not mailbox.active or not mailbox.domain.active:
        check_password(password or "", _dummy_password_hash())
        return None, mailbox is not None, False
    digest = hmac.new(_auth_cache_key, password.encode("utf-8"), hashlib.sha256).digest()
    now = time.monotonic()
    if client:
        app = _app_password_match(mailbox, password, digest, now)
        if app is not None:
            _app_password_used(app)
            return mailbox, True, False
        if mailbox.totp_secret:
            return None, True, True
    matched = _password_matches(("mailbox", mailbox.id), mailbox.password, password, digest, now)
    return (mailbox if matched else None), True, False


def _password_matches(
    key: tuple[str, int], stored: str, password: str, digest: bytes, now: float
) -> bool:
    with _auth_cache_lock:
        cached = _auth_cache.get(key)
    if (
        cached is not None
        and cached[0] == stored
        and cached[2] > now
        and hmac.compare_digest(cached[1], digest)
    ):
        return True
    return _password_check(key, stored, password, digest, now)


def _password_check(
    cache_key: tuple[str, int], stored: str, password: str, digest: bytes, now: float
) -> bool:
    """check_password, single-flight: while one thread hashes a password against a stored
    hash, others trying the same password wait for its answer instead of hashing it again
    (ten clients logging in at once on a cold server cost one PBKDF2, not ten). A success is
    cached before the waiters are released."""
    key = (cache_key, stored, digest)
    with _auth_cache_lock:
        running = _auth_checks.get(key)
        if running is None:
            _auth_checks[key] = mine = futures.Future()
    if running is not None:
        return running.result()
    matched = False
    try:
        matched = check_password(password, stored)
        if matched and settings.MAILHOST_AUTH_CACHE_SECONDS:
            with _auth_cache_lock:
                _auth_cache[cache_key] = (
                    stored,
                    digest,
                    now + settings.MAILHOST_AUTH_CACHE_SECONDS,
                )
    finally:
        with _auth_cache_lock:
            del _auth_checks[key]
        mine.set_result(matched)
    return matched


def _dummy_password_hash() -> str:
    """A hash made by the current default hasher (same algorithm, same work factor), made
    once: on first need, so that the first logins of a cold server do not each make one."""
    global _dummy_hash
    hasher = get_hasher()
    with _dummy_hash_lock:
        if _dummy_hash is None or not _dummy_hash.startswith(hasher.algorithm + "$"):
            _dummy_hash = make_password(secrets.token_urlsafe(16), hasher=hasher)
        return _dummy_hash


def _auth_cache_forget(mailbox_id: int) -> None:
    with _auth_cache_lock:
        _auth_cache.pop(("mailbox", mailbox_id), None)


# --- Account security: password change, app passwords, two-factor, web sessions ----------

# App passwords are 16 lower-case letters (75 bits; shown as four groups of four, as Gmail
# does); recovery codes 12 (56 bits). The first PREFIX_LENGTH characters are kept in clear to
# find the row, so a login hashes one candidate, not every one; the rest stays behind the
# password hasher.
APP_PASSWORD_LENGTH = 16
RECOVERY_CODE_LENGTH = 12
RECOVERY_CODE_COUNT = 10
PREFIX_LENGTH = 4
MAX_APP_PASSWORDS = 50
_SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
# last_used_at of an app password and last_seen_at of a web session are kept to the minute.
USE_RECORD_INTERVAL = timedelta(minutes=1)


def _random_letters(length: int) -> str:
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(length))


def _typed_secret(text: str) -> str:
    """How a typed app password or recovery code compares: no spaces or dashes, lower case."""
    return re.sub(r"[\s-]", "", text).lower()


def mailbox_change_password(
    *,
    mailbox: Mailbox,
    old_password: str,
    new_password: str,
    keep_session_key: str | None = None,
) -> None:
    """The reader's own password change: the old password must match (InvalidValue if not),
    the new one passes the strength checks. Every other web session ends, the auth cache
    forgets the old password (every process checks the stored hash, so IMAP, POP3, SMTP and
    ManageSieve refuse the old one at once), and the open IMAP, POP3 and ManageSieve sessions
    of the mailbox end (a SIGN_OUT change event)."""
    if not check_password(old_password, mailbox.password):
        raise InvalidValue("the current password is not right")
    if old_password == new_password:
        raise InvalidValue("the new password is the same as the current one")
    mailbox_set_password(mailbox=mailbox, password=new_password, check_password_strength=True)
    web_sessions_end(mailbox=mailbox, keep_session_key=keep_session_key)
    # Every process's IMAP, POP3 and ManageSieve sessions of the mailbox hear this and end.
    events.publish(ChangeEvent(mailbox.pk, 0, events.SIGN_OUT, modseq=time.time_ns()))
    logger.info("password changed mailbox=%s", mailbox.address)


def mailbox_set_preferences(
    *, mailbox: Mailbox, display_name: str, time_zone: str, language: str
) -> None:
    """Display name, time zone (an IANA name, blank: the browser's) and language (one of
    settings.LANGUAGES, blank: the site's)."""
    import zoneinfo

    display_name = display_name.strip()
    if len(display_name) > 200 or any(c in display_name for c in "\r\n"):
        raise InvalidValue("a display name is one line of at most 200 characters")
    if time_zone:
        try:
            zoneinfo.ZoneInfo(time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise InvalidValue(f"unknown time zone {time_zone!r}") from None
    if language and language not in dict(settings.LANGUAGES):
        raise InvalidValue(f"unknown language {language!r}")
    mailbox.display_name = display_name
    mailbox.time_zone = time_zone
    mailbox.language = language
    mailbox.save(update_fields=["display_name", "time_zone", "language"])


def app_password_create(*, mailbox: Mailbox, name: str) -> tuple[AppPassword, str]:
    """A new app password: the row and the password itself, which is never shown again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise InvalidValue("name the device (at most 100 characters)")
    if AppPassword.objects.filter(mailbox=mailbox).count() >= MAX_APP_PASSWORDS:
        raise InvalidValue(f"at most {MAX_APP_PASSWORDS} app passwords; revoke one first")
    secret = _random_letters(APP_PASSWORD_LENGTH)
    app = AppPassword.objects.create(
        mailbox=mailbox,
        name=name,
        prefix=secret[:PREFIX_LENGTH],
        password=make_password(secret),
    )
    logger.info("app password created mailbox=%s id=%s", mailbox.address, app.pk)
    return app, " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def app_password_revoke(*, mailbox: Mailbox, app_password_id: int) -> bool:
    deleted, _ = AppPassword.objects.filter(mailbox=mailbox, pk=app_password_id).delete()
    if deleted:
        with _auth_cache_lock:
            _auth_cache.pop(("app", app_password_id), None)
        logger.info("app password revoked mailbox=%s id=%s", mailbox.address, app_password_id)
    return bool(deleted)


def _app_password_match(
    mailbox: Mailbox, password: str, digest: bytes, now: float
) -> AppPassword | None:
    typed = _typed_secret(password)
    if len(typed) != APP_PASSWORD_LENGTH:
        return None
    typed_digest = hmac.new(_auth_cache_key, typed.encode(), hashlib.sha256).digest()
    for app in AppPassword.objects.filter(mailbox=mailbox, prefix=typed[:PREFIX_LENGTH]):
        if _password_matches(("app", app.id), app.password, typed, typed_digest, now):
            return app
    return None


def _app_password_used(app: AppPassword) -> None:
    now = timezone.now()
    if app.last_used_at is not None and now - app.last_used_at < USE_RECORD_INTERVAL:
        return
    try:
        AppPassword.objects.filter(pk=app.pk).update(last_used_at=now)
    except DatabaseError as exc:  # bookkeeping only: the login goes on
        logger.warning("could not record the use of app password %s: %s", app.pk, exc)


def totp_enable(*, mailbox: Mailbox, secret: str, code: str) -> list[str]:
    """Turn two-factor sign-in on once the reader's app shows the right code for `secret`;
    the recovery codes, shown once. From now on mail clients need app passwords."""
    from mailboxes import totp

    step = totp.verify(secret, code, last_step=0)
    if step is None:
        raise InvalidValue("that code is not the one your app shows now")
    with transaction.atomic():
        mailbox.totp_secret = secret
        mailbox.totp_last_step = step
        mailbox.save(update_fields=["totp_secret", "totp_last_step"])
        codes = _recovery_codes_replace(mailbox)
    logger.info("two-factor enabled mailbox=%s", mailbox.address)
    return codes


def totp_disable(*, mailbox: Mailbox) -> None:
    with transaction.atomic():
        mailbox.totp_secret = ""
        mailbox.totp_last_step = 0
        mailbox.save(update_fields=["totp_secret", "totp_last_step"])
        RecoveryCode.objects.filter(mailbox=mailbox).delete()
    logger.info("two-factor disabled mailbox=%s", mailbox.address)


def recovery_codes_regenerate(*, mailbox: Mailbox) -> list[str]:
    with transaction.atomic():
        return _recovery_codes_replace(mailbox)


def _recovery_codes_replace(mailbox: Mailbox) -> list[str]:
    RecoveryCode.objects.filter(mailbox=mailbox).delete()
    codes = [_random_letters(RECOVERY_CODE_LENGTH) for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create(
        RecoveryCode(mailbox=mailbox, code=code[:PREFIX_LENGTH] + "$" + make_password(code))
        for code in codes
    )
    return ["-".join(c[i : i + 4] for i in range(0, len(c), 4)) for c in codes]


def second_factor_check(*, mailbox: Mailbox, code: str) -> str | None:
    """The second step of a two-factor sign-in: "totp" for a current code (each time step
    once: RFC 6238 5.2), "recovery" for an unused recovery code (used up now), else None.
    The caller counts a None as a failed login."""
    from mailboxes import totp

    if not mailbox.totp_secret:
        return None
    step = totp.verify(mailbox.totp_secret, code, last_step=mailbox.totp_last_step)
    if step is not None:
        # Conditional on the step read: two requests racing with one code let one through.
        won = Mailbox.objects.filter(pk=mailbox.pk, totp_last_step__lt=step).update(
            totp_last_step=step
        )
        return "totp" if won else None
    typed = _typed_secret(code)
    if len(typed) != RECOVERY_CODE_LENGTH:
        return None
    candidates = RecoveryCode.objects.filter(
        mailbox=mailbox, used_at__isnull=True, code__startswith=typed[:PREFIX_LENGTH] + "$"
    )
    for row in candidates:
        if check_password(typed, row.code.split("$", 1)[1]):
            used = RecoveryCode.objects.filter(pk=row.pk, used_at__isnull=True).update(
                used_at=timezone.now()
            )
            if used:
                logger.info("recovery code used mailbox=%s", mailbox.address)
                return "recovery"
    return None


def admin_totp_enrol(*, user) -> str:  # noqa: ANN001 - a Django user
    """A new TOTP secret for a Django admin user (replacing any): the key to show once."""
    from mailboxes import totp

    secret = totp.new_secret()
    AdminTOTP.objects.update_or_create(user=user, defaults={"secret": secret, "last_step": 0})
    logger.info("admin two-factor enrolled user=%s", user.get_username())
    return secret


def admin_totp_remove(*, user) -> bool:  # noqa: ANN001
    deleted, _ = AdminTOTP.objects.filter(user=user).delete()
    return bool(deleted)


def admin_totp_check(*, user, code: str) -> bool:  # noqa: ANN001
    """True for an admin without two-factor sign-in, or with the current code (each step
    once); False otherwise."""
    from mailboxes import totp

    enrolment = AdminTOTP.objects.filter(user=user).first()
    if enrolment is None:
        return True
    step = totp.verify(enrolment.secret, code, last_step=enrolment.last_step)
    if step is None:
        return False
    return bool(
        AdminTOTP.objects.filter(pk=enrolment.pk, last_step__lt=step).update(last_step=step)
    )


def passkey_registration_options(*, mailbox: Mailbox, rp_id: str) -> tuple[str, bytes]:
    """WebAuthn registration options (JSON for navigator.credentials.create) and the
    challenge the caller keeps until passkey_register. A discoverable credential with user
    verification: it signs in without the address or the password."""
    import webauthn
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria,
        PublicKeyCredentialDescriptor,
        ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    existing = Passkey.objects.filter(mailbox=mailbox).values_list("credential_id", flat=True)
    options = webauthn.generate_registration_options(
        rp_id=rp_id,
        rp_name="Mailhost",
        user_id=f"mailbox-{mailbox.pk}".encode(),
        user_name=mailbox.address,
        user_display_name=mailbox.display_name or mailbox.address,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=webauthn.base64url_to_bytes(c)) for c in existing
        ],
    )
    return webauthn.options_to_json(options), options.challenge


def passkey_register(
    *, mailbox: Mailbox, name: str, credential: str, challenge: bytes, rp_id: str, origin: str
) -> Passkey:
    """Verify the authenticator's attestation response (challenge, origin, rp id, user
    verification) and keep the credential. InvalidValue when it does not verify."""
    import webauthn
    from webauthn.helpers.exceptions import InvalidRegistrationResponse

    name = name.strip()[:100] or "Passkey"
    try:
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            require_user_verification=True,
        )
    except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
        raise InvalidValue(f"the passkey could not be verified ({exc})") from None
    passkey = Passkey.objects.create(
        mailbox=mailbox,
        name=name,
        credential_id=webauthn.helpers.bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
    )
    logger.info("passkey added mailbox=%s id=%s", mailbox.address, passkey.pk)
    return passkey


def passkey_authentication_options(*, rp_id: str) -> tuple[str, bytes]:
    """Options for navigator.credentials.get with no credential list (discoverable: the
    authenticator offers the passkeys it holds for this site)."""
    import webauthn
    from webauthn.helpers.structs import UserVerificationRequirement

    options = webauthn.generate_authentication_options(
        rp_id=rp_id, user_verification=UserVerificationRequirement.REQUIRED
    )
    return webauthn.options_to_json(options), options.challenge


def passkey_authenticate(
    *, credential: str, challenge: bytes, rp_id: str, origin: str
) -> tuple[Mailbox | None, str | None]:
    """The mailbox whose passkey signed the challenge (user verified, origin and rp id
    checked, signature counter not going back), or None; with the address it claimed (for
    the limiter), None when the credential is unknown."""
    import json

    import webauthn
    from webauthn.helpers.exceptions import InvalidAuthenticationResponse

    try:
        credential_id = json.loads(credential)["id"]
    except (ValueError, KeyError, TypeError):
        return None, None
    passkey = (
        Passkey.objects.select_related("mailbox__domain")
        .filter(credential_id=credential_id)
        .first()
    )
    if passkey is None:
        return None, None
    mailbox = passkey.mailbox
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp_id,
            expected_origin=origin,
            credential_public_key=bytes(passkey.public_key),
            credential_current_sign_count=passkey.sign_count,
            require_user_verification=True,
        )
    except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
        logger.info("passkey refused mailbox=%s reason=%s", mailbox.address, exc)
        return None, mailbox.address
    if not mailbox.active or not mailbox.domain.active:
        return None, mailbox.address
    Passkey.objects.filter(pk=passkey.pk).update(
        sign_count=verified.new_sign_count, last_used_at=timezone.now()
    )
    return mailbox, mailbox.address


def passkey_delete(*, mailbox: Mailbox, passkey_id: int) -> bool:
    deleted, _ = Passkey.objects.filter(mailbox=mailbox, pk=passkey_id).delete()
    return bool(deleted)


def web_session_start(
    *, mailbox: Mailbox, session_key: str, user_agent: str, ip: str | None
) -> WebSession:
    return WebSession.objects.create(
        mailbox=mailbox,
        session_key=session_key,
        user_agent=user_agent[:300],
        ip=(ip or "")[:64],
        last_seen_at=timezone.now(),
    )


def web_session_seen(*, session_key: str, ip: str | None) -> None:
    WebSession.objects.filter(session_key=session_key).update(
        last_seen_at=timezone.now(), ip=(ip or "")[:64]
    )


def web_session_forget(*, session_key: str) -> None:
    """The row of a session that signed out (the session store ends it itself)."""
    WebSession.objects.filter(session_key=session_key).delete()


def web_sessions_end(
    *, mailbox: Mailbox, keep_session_key: str | None = None, session_id: int | None = None
) -> int:
    """End the mailbox's web sessions (one by id, or all but keep_session_key): the rows and
    the sessions themselves. The number ended."""
    from importlib import import_module

    rows = WebSession.objects.filter(mailbox=mailbox)
    if session_id is not None:
        rows = rows.filter(pk=session_id)
    if keep_session_key:
        rows = rows.exclude(session_key=keep_session_key)
    keys = list(rows.values_list("session_key", flat=True))
    store = import_module(settings.SESSION_ENGINE).SessionStore
    for key in keys:
        store(session_key=key).delete()
    rows.delete()
    if keys:
        logger.info("web sessions ended mailbox=%s count=%d", mailbox.address, len(keys))
    return len(keys)


# --- Blobs -------------------------------------------------------------------------------


def blob_write(raw: bytes) -> str:
    """Write and sync the bytes; return the storage name. Call before the transaction.

    Bytes that fit MAILHOST_BLOB_INLINE_MAX are not written: they get an inline name, and
    blob_row_create stores them in the row, made durable by the caller's commit."""
    key = uuid.uuid4().hex
    if len(raw) <= settings.MAILHOST_BLOB_INLINE_MAX:
        return Blob.INLINE_PREFIX + key
    name = f"{key[:2]}/{key[2:4]}/{key}"
    return storages["blobs"].save(name, ContentFile(raw))


def blob_store(raw: bytes) -> Blob:
    """Write the bytes durably and create the row (inside the caller's transaction)."""
    return blob_row_create(name=blob_write(raw), raw=raw)


def blob_referrers() -> list[ForeignKey]:
    """The columns whose rows hold a blob: every foreign key to Blob, as Django's app
    registry knows them (Message here, the spool's OutboundMessage in delivery), so that the
    store names no other part's table and a new holder cannot be forgotten. A blob none of
    them names is garbage."""
    return [rel.field for rel in Blob._meta.related_objects if rel.one_to_many or rel.one_to_one]


def blob_release(blob_ids: Iterable[int]) -> int:
    """Delete blobs no message and no spool entry uses; files go once the rows are gone."""
    ids = sorted(set(blob_ids))
    released = 0
    names: list[str] = []  # their files (inline blobs have none)
    # Plain statements: every EXPUNGE comes here, and the ORM's delete() would first read
    # the rows that PROTECT them, which the NOT EXISTS below has just ruled out (the foreign
    # keys still refuse a delete that races a new reference).
    quote = connection.ops.quote_name
    blob, blob_text, pending = (
        quote(model._meta.db_table) for model in (Blob, BlobText, BlobTextPending)
    )
    unreferenced = "".join(
        f" AND NOT EXISTS (SELECT 1 FROM {quote(holder.model._meta.db_table)}"
        f" WHERE {quote(holder.column)} = b.id)"
        for holder in blob_referrers()
    )
    with connection.cursor() as cursor:
        for start in range(0, len(ids), 5000):
            chunk = ids[start : start + 5000]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT id, name FROM {blob} b WHERE id IN ({marks}){unreferenced}",
                chunk,
            )
            unused = cursor.fetchall()
            if unused:
                marks = ", ".join(["%s"] * len(unused))
                ids_unused = [row[0] for row in unused]
                cursor.execute(f"DELETE FROM {blob_text} WHERE blob_id IN ({marks})", ids_unused)
                cursor.execute(f"DELETE FROM {pending} WHERE blob_id IN ({marks})", ids_unused)
                cursor.execute(f"DELETE FROM {blob} WHERE id IN ({marks})", ids_unused)
                released += len(unused)
                names.extend(row[1] for row in unused if not Blob.name_is_inline(row[1]))
    if not names:
        return released
    # Removed after the commit: an unsynced one (an EXPUNGE's) is synced first, else a power
    # loss could bring back rows naming files already gone.
    sync_this_transaction()

    def remove_files() -> None:
        storage = storages["blobs"]
        for name in names:
            try:
                storage.delete(name)
            except OSError:
                logger.warning("could not remove blob file %s", name)

    transaction.on_commit(remove_files)
    return released


def blob_collect_garbage(*, orphan_age: int | None = None) -> tuple[int, int]:
    """Remove unused blob rows and files left by writes that never committed.

    Run periodically (the delivery sweeper's housekeeping, or `manage.py collectblobs`).
    A row is unused when no message and no spool entry names it; a file is an orphan when
    no row names it. Both must be older than `orphan_age` seconds (default
    MAILHOST_BLOB_ORPHAN_AGE): a write in flight has a young file and maybe a young row not
    yet referenced. Memory stays flat however many blobs there are. Returns (rows removed,
    files removed).
    """
    age = settings.MAILHOST_BLOB_ORPHAN_AGE if orphan_age is None else orphan_age
    old = timezone.now() - timedelta(seconds=age)
    unused = Blob.objects.filter(created_at__lt=old)
    for holder in blob_referrers():
        held = holder.model._base_manager.filter(**{holder.attname: OuterRef("pk")})
        unused = unused.exclude(Exists(held))
    unused_ids = list(unused.values_list("id", flat=True))
    rows = 0
    for start in range(0, len(unused_ids), 5000):
        with transaction.atomic():  # blob_release re-checks under its own transaction
            rows += blob_release(unused_ids[start : start + 5000])
    storage = storages["blobs"]
    if hasattr(storage, "iter_objects"):  # object storage: list, compare, delete
        return rows, _collect_objects(storage, old)
    try:
        root = storage.path("")
    except NotImplementedError:
        return rows, 0
    cutoff = time.time() - age
    files = 0
    candidates: list[tuple[str, str]] = []

    def remove_unknown() -> None:
        nonlocal files
        names = [name for name, _ in candidates]
        known = set(Blob.objects.filter(name__in=names).values_list("name", flat=True))
        for name, path in candidates:
            if name not in known:
                files += _unlink(path)
        candidates.clear()

    for directory, _dirs, filenames in os.walk(root):
        for filename in filenames:
            path = os.path.join(directory, filename)
            try:
                if os.path.getmtime(path) >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            if filename.startswith(".tmp-"):  # a write that died before its rename
                files += _unlink(path)
                continue
            candidates.append((os.path.relpath(path, root).replace(os.sep, "/"), path))
            if len(candidates) >= 1000:
                remove_unknown()
    if candidates:
        remove_unknown()
    return rows, files


def _collect_objects(storage, old) -> int:  # noqa: ANN001 - a DurableS3Storage
    """Delete the objects older than `old` that no Blob row names (writes whose rows never
    committed), listing the blob prefix a page at a time."""
    removed = 0
    candidates: list[str] = []

    def remove_unknown() -> None:
        nonlocal removed
        known = set(Blob.objects.filter(name__in=candidates).values_list("name", flat=True))
        for name in candidates:
            if name in known:
                continue
            try:
                storage.delete(name)
            except OSError:
                logger.warning("could not remove blob object %s", name)
                continue
            removed += 1
        candidates.clear()

    for name, modified in storage.iter_objects():
        if modified >= old:
            continue  # a write in flight: its row may not be committed yet
        candidates.append(name)
        if len(candidates) >= 1000:
            remove_unknown()
    if candidates:
        remove_unknown()
    if removed:
        logger.info("blob objects collected count=%d", removed)
    return removed


_last_collection: float | None = None
_collection_lock = threading.Lock()


def blob_collect_garbage_if_due() -> tuple[int, int] | None:
    """blob_collect_garbage at most once per MAILHOST_BLOB_ORPHAN_AGE in this process (the
    delivery sweeper's housekeeping calls this every few minutes). None when not due."""
    global _last_collection
    now = time.monotonic()
    with _collection_lock:
        interval = max(settings.MAILHOST_BLOB_ORPHAN_AGE, 60)
        if _last_collection is not None and now - _last_collection < interval:
            return None
        _last_collection = now
    return blob_collect_garbage()


def _unlink(path: str) -> int:
    try:
        os.unlink(path)
        return 1
    except FileNotFoundError:
        return 0


# --- Folders -----------------------------------------------------------------------------


def _next_uidvalidity(mailbox: Mailbox) -> int:
    # Caller holds the mailbox row lock (or is creating the mailbox).
    value = max(mailbox.uidvalidity_seq + 1, int(time.time()) & 0x7FFFFFFF)
    Mailbox.objects.filter(pk=mailbox.pk).update(uidvalidity_seq=value)
    mailbox.uidvalidity_seq = value
    return value


def _folder_insert(mailbox: Mailbox, name: str, special_use: str = "") -> Folder:
    folder = Folder.objects.create(
        mailbox=mailbox,
        name=name,
        special_use=special_use,
        uidvalidity=_next_uidvalidity(mailbox),
    )
    events.publish(ChangeEvent(mailbox.id, folder.id, "folders"))
    return folder


def folder_name_validate(name: str) -> str:
    """Return the canonical name or raise FolderError."""
    if name.upper() == "INBOX":
        return "INBOX"
    if not name or len(name) > 500:
        raise FolderError("folder name is empty or too long")
    if any(c in name for c in "\x00\r\n*%") or any(ord(c) < 32 for c in name):
        raise FolderError("folder name has a forbidden character")
    parts = name.split(HIERARCHY_DELIMITER)
    if any(part == "" or part in {".", ".."} for part in parts):
        raise FolderError("folder name has an empty or relative component")
    if parts[0].upper() == "INBOX":
        parts[0] = "INBOX"
    return HIERARCHY_DELIMITER.join(parts)


@transaction.atomic
def folder_create(
    *, mailbox: Mailbox, name: str, special_use: str = "", subscribe: bool = True
) -> Folder:
    """Create a folder and its missing parents; `subscribe` puts those it creates on the
    subscription list (IMAP CREATE does not: RFC 9051 6.3.4, clients SUBSCRIBE)."""
    name = folder_name_validate(name)
    if special_use and special_use not in SpecialUse.values:
        raise FolderError(f"unknown special use {special_use}")
    mailbox = Mailbox.objects.select_for_update().get(pk=mailbox.pk)
    if Folder.objects.filter(mailbox=mailbox, name=name).exists():
        raise AlreadyExists(f"folder {name} exists")
    parts = name.split(HIERARCHY_DELIMITER)
    created = []
    for depth in range(1, len(parts)):
        parent = HIERARCHY_DELIMITER.join(parts[:depth])
        if not Folder.objects.filter(mailbox=mailbox, name=parent).exists():
            created.append(_folder_insert(mailbox, parent))
    folder = _folder_insert(mailbox, name, special_use)
    if subscribe:
        for item in [*created, folder]:
            Subscription.objects.get_or_create(mailbox=mailbox, name=item.name)
    return folder


@transaction.atomic
def folder_delete(*, folder: Folder) -> None:
    if folder.name == "INBOX":
        raise FolderError("INBOX cannot be deleted")
    prefix = folder.name + HIERARCHY_DELIMITER
    if Folder.objects.filter(mailbox_id=folder.mailbox_id, name__startswith=prefix).exists():
        raise FolderError("folder has subfolders; delete them first")
    _lock_mailboxes([folder.mailbox_id])
    folder = _lock_folders([folder.pk])[folder.pk]
    blob_ids = set(Message.objects.filter(folder=folder).values_list("blob_id", flat=True))
    Mailbox.objects.filter(pk=folder.mailbox_id).update(
        used_bytes=F("used_bytes") - folder.total_size,
        used_messages=F("used_messages") - folder.message_count,
    )
    folder_id, mailbox_id = folder.id, folder.mailbox_id
    folder.delete()
    blob_release(blob_ids)
    events.publish(ChangeEvent(mailbox_id, folder_id, "folders"))


@transaction.atomic
def folder_rename(*, folder: Folder, new_name: str) -> Folder:
    """Rename a folder with its subfolders. Renaming INBOX moves its messages into a new
    folder and leaves INBOX empty (RFC 9051 6.3.6)."""
    new_name = folder_name_validate(new_name)
    mailbox = Mailbox.objects.select_for_update().get(pk=folder.mailbox_id)
    if new_name == "INBOX" or Folder.objects.filter(mailbox=mailbox, name=new_name).exists():
        raise AlreadyExists(f"folder {new_name} exists")
    if folder.name != "INBOX" and new_name.startswith(folder.name + HIERARCHY_DELIMITER):
        raise FolderError("cannot move a folder into itself")
    if folder.name == "INBOX":
        target = folder_create(mailbox=mailbox, name=new_name)
        uids = list(Message.objects.filter(folder=folder).values_list("uid", flat=True))
        if uids:
            messages_move(source=folder, uids=uids, target=target)
        return target
    parts = new_name.split(HIERARCHY_DELIMITER)
    for depth in range(1, len(parts)):
        parent = HIERARCHY_DELIMITER.join(parts[:depth])
        if not Folder.objects.filter(mailbox=mailbox, name=parent).exists():
            _folder_insert(mailbox, parent)
    old_prefix = folder.name + HIERARCHY_DELIMITER
    children = list(Folder.objects.filter(mailbox=mailbox, name__startswith=old_prefix))
    renamed = [(folder, new_name)] + [
        (child, new_name + HIERARCHY_DELIMITER + child.name[len(old_prefix) :])
        for child in children
    ]
    clash = Folder.objects.filter(mailbox=mailbox, name__in=[n for _, n in renamed]).first()
    if clash is not None:
        raise AlreadyExists(f"folder {clash.name} exists")
    # Subscriptions follow the folders they name (as Dovecot's do); one to a name that
    # exists no more stays where it is.
    subscribed = set(
        Subscription.objects.filter(
            mailbox=mailbox, name__in=[item.name for item, _ in renamed]
        ).values_list("name", flat=True)
    )
    for item, name in renamed:
        if item.name in subscribed:
            Subscription.objects.filter(mailbox=mailbox, name=item.name).delete()
            Subscription.objects.get_or_create(mailbox=mailbox, name=name)
        # A renamed folder is a new mailbox to clients: a new UIDVALIDITY (RFC 9051 6.3.6).
        item.name = name
        item.uidvalidity = _next_uidvalidity(mailbox)
        item.save(update_fields=["name", "uidvalidity"])
        events.publish(ChangeEvent(mailbox.id, item.id, "folders"))
    return folder


def subscription_set(*, mailbox: Mailbox | int, name: str, subscribed: bool) -> None:
    """Put a name on the mailbox's subscription list or take it off. The name need not
    exist as a folder, and deleting the folder leaves it listed (RFC 9051 6.3.7, 6.3.9)."""
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.id
    if name.upper() == "INBOX":
        name = "INBOX"
    if subscribed:
        try:
            with transaction.atomic():
                Subscription.objects.get_or_create(mailbox_id=mailbox_id, name=name)
        except IntegrityError:  # subscribed concurrently: it is on the list either way
            pass
    else:
        Subscription.objects.filter(mailbox_id=mailbox_id, name=name).delete()
    # NOTIFY's SubscriptionChange (RFC 5465 5.6): no folder, the listener compares the lists
    events.publish(ChangeEvent(mailbox_id, 0, "subscriptions"))


def folder_set_subscribed(*, folder: Folder, subscribed: bool) -> None:
    subscription_set(mailbox=folder.mailbox_id, name=folder.name, subscribed=subscribed)


def folder_claim_recent(
    *, folder: Folder | None = None, folder_id: int | None = None, upto: int | None = None
) -> tuple[int, int]:
    """Claim \\Recent for a session that selects the folder read-write (RFC 3501 2.3.2).

    Returns the range [first, uidnext) of UIDs that are \\Recent for this session only.
    The folder, or its id alone (a selected session's claim: no model instance to build).
    `upto`: claim no UID from there on (a selected session claims only the arrivals it is
    announcing: one arriving meanwhile is for whichever session announces it first).
    """
    if folder is not None:
        folder_id = folder.pk
    # Most claims find nothing left (another session announced the arrivals first): a
    # plain read says so without a write transaction. The claimed bound only grows, so
    # nothing to claim as of this read is nothing to claim now.
    first, end = _recent_bounds(folder_id, upto, lock="")
    if end <= first:
        return first, first
    # Not mail: on SQLite shared with other threads' writes, not synced (groupcommit).
    return groupcommit.shared_where_writers_take_turns(
        lambda: _folder_claim_recent_locked(folder_id, upto), synced=False
    )


def _recent_bounds(folder_id: int, upto: int | None, *, lock: str) -> tuple[int, int]:
    """The folder's first unclaimed UID and the end of what a claim up to `upto` takes."""
    table = connection.ops.quote_name(Folder._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT first_recent_uid, uidnext FROM {table} WHERE id = %s{lock}", [folder_id]
        )
        row = cursor.fetchone()
    if row is None:
        raise Folder.DoesNotExist("Folder matching query does not exist.")
    first, uidnext = row
    return first, uidnext if upto is None else min(upto, uidnext)


@unsynced_atomic()
def _folder_claim_recent_locked(folder_id: int, upto: int | None) -> tuple[int, int]:
    # Plain statements: every read-write SELECT claims.
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    first, end = _recent_bounds(folder_id, upto, lock=lock)
    if end > first:
        table = connection.ops.quote_name(Folder._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} SET first_recent_uid = %s WHERE id = %s", [end, folder_id]
            )
    return first, max(first, end)


# --- Messages ----------------------------------------------------------------------------
#
# Lock order, so that concurrent writers on PostgreSQL never deadlock: mailbox rows first (by
# id), then folder rows (by id). Every write that changes a mailbox's usage takes its mailbox
# row; writes that only touch flags take the folder row alone. On SQLite the database write
# lock is taken at BEGIN (transaction_mode IMMEDIATE), so writers are serialized anyway.


@dataclass
class RecipientResult:
    """What became of one envelope recipient in message_deliver."""

    address: str
    status: Outcome  # DELIVERED, NO_SUCH_USER, OVER_QUOTA, NOT_HOSTED
    mailbox_ids: tuple[int, ...] = field(default=())
    forward: tuple[str, ...] = field(default=())  # remote alias targets: the caller spools them

    @property
    def accepted(self) -> bool:
        return self.status is Outcome.DELIVERED


# The row locks and counters every write to a folder takes: plain statements (mailhost/
# plainsql.py), since building them through the ORM cost more CPU than running them (IMAP
# APPEND, STORE and EXPUNGE take them on every command).
_FOLDER_COLUMNS = Columns(Folder, "f")
_USAGE_FIELDS = ["id", "quota", "used_bytes", "quota_messages", "used_messages"]
_USAGE_SQL = "m.quota, m.used_bytes, m.quota_messages, m.used_messages"
_MESSAGE_INSERT = Insert(Message)
_CACHE_COLUMNS = Columns(Message, "m", ["id", "mime_cache"])


def _mailbox_usage(mailbox_ids: Iterable[int], *, lock: bool) -> dict[int, Mailbox]:
    """Mailbox rows (id order) with only their quota and usage read; `lock`: FOR UPDATE
    where the database has it."""
    ids = sorted(set(mailbox_ids))
    if not ids:
        return {}
    table = connection.ops.quote_name(Mailbox._meta.db_table)
    sql = (
        f"SELECT m.id, {_USAGE_SQL} FROM {table} m "
        f"WHERE m.id IN ({', '.join(['%s'] * len(ids))}) ORDER BY m.id"
    )
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        rows = cursor.fetchall()
    return {row[0]: Mailbox.from_db(connection.alias, _USAGE_FIELDS, row) for row in rows}


def _lock_mailboxes(mailbox_ids: Iterable[int]) -> dict[int, Mailbox]:
    """Lock mailbox rows (id order) and return them with their quota and usage."""
    return _mailbox_usage(mailbox_ids, lock=True)


_ADD_USAGE_SQL = "SET used_bytes = used_bytes + %s, used_messages = used_messages + %s"


def _add_usage(mailbox_id: int, size: int, count: int) -> None:
    """Add `size` octets and `count` messages (negative: free) to a mailbox's usage."""
    table = connection.ops.quote_name(Mailbox._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} {_ADD_USAGE_SQL} WHERE id = %s", [size, count, mailbox_id])


def _lock_folders(folder_ids: Iterable[int]) -> dict[int, Folder]:
    """Lock folder rows (id order); raises NotFound when one is gone."""
    wanted = sorted(set(folder_ids))
    if not wanted:
        return {}
    columns = _FOLDER_COLUMNS
    sql = (
        f"SELECT {columns.sql} FROM {columns.table} "
        f"WHERE f.id IN ({', '.join(['%s'] * len(wanted))}) ORDER BY f.id"
    )
    if connection.features.has_select_for_update:
        sql += " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, wanted)
        rows = cursor.fetchall()
    locked = {f.id: f for f in map(columns.instance, rows)}
    if len(locked) != len(wanted):
        raise NotFound("folder does not exist")
    return locked


def _update_folder_counters(
    folder: Folder, *, uidnext: int | None, modseq: int, count: int, unseen: int, size: int
) -> None:
    """Set a locked folder's HIGHESTMODSEQ (and UIDNEXT, when given) and add to its message,
    unseen and octet counters, in the row and in `folder`."""
    table = connection.ops.quote_name(Folder._meta.db_table)
    sets = "highestmodseq = %s, message_count = message_count + %s, "
    sets += "unseen_count = unseen_count + %s, total_size = total_size + %s"
    params = [modseq, count, unseen, size]
    if uidnext is not None:
        sets = "uidnext = %s, " + sets
        params.insert(0, uidnext)
        folder.uidnext = uidnext
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {sets} WHERE id = %s", [*params, folder.pk])
    folder.highestmodseq = modseq
    folder.message_count += count
    folder.unseen_count += unseen
    folder.total_size += size


def _reserve(folder: Folder, count: int, size: int, unseen: int) -> tuple[int, int]:
    """Reserve `count` UIDs and a new MODSEQ in a locked folder and update its counters.

    UIDs come from the locked row, so concurrent writers (threads or processes, SQLite or
    PostgreSQL) never share or reuse one, and UIDs grow in commit order.
    """
    first_uid = folder.uidnext
    modseq = folder.highestmodseq + 1
    _update_folder_counters(
        folder, uidnext=first_uid + count, modseq=modseq, count=count, unseen=unseen, size=size
    )
    return first_uid, modseq


def _allocate(folder_id: int, count: int, size: int, unseen: int) -> tuple[Folder, int, int]:
    """Lock the folder row, reserve `count` UIDs and a new MODSEQ, and update the counters."""
    folder = _lock_folders([folder_id])[folder_id]
    first_uid, modseq = _reserve(folder, count, size, unseen)
    return folder, first_uid, modseq


def _over_quota(mailbox: quotas.Holder, size: int, count: int = 1) -> bool:
    return not quotas.fits(mailbox, size, count)


def blob_discard(name: str) -> None:
    """Remove the file of a blob_write that no committed row names (a refused message)."""
    if Blob.name_is_inline(name):
        return  # no file: the bytes went only into the rolled-back row
    try:
        storages["blobs"].delete(name)
    except OSError:
        logger.warning("could not remove unused blob file %s", name)


def message_deliver(
    *,
    raw: bytes,
    recipients: Sequence[str],
    internal_date: datetime | None = None,
    blob: Blob | None = None,
    resolutions: Sequence[Resolution] | None = None,
    summary: tuple[dict, bool] | None = None,
    mail_from: str = "",
    plans: Mapping[int, MailboxPlan] | None = None,
    sieve: bool = True,
    junk_mailbox_ids: Iterable[int] | None = None,
) -> list[RecipientResult]:
    """The delivery agent: file one message for many envelope recipients.

    Resolves each recipient (mailbox, alias, sub-address, catch-all), files the message once
    per distinct mailbox (INBOX, or Junk: for the mailboxes in `junk_mailbox_ids`, the spam
    verdict's, when given; else for all when the message says `X-Spam: Yes`, which only mail
    from trusted paths can: port 25's X-Spam headers from outside are removed), stores
    the bytes once for all of them, and refuses only the recipients whose every mailbox is over
    quota (Outcome.OVER_QUOTA). Remote alias targets come back in `forward` for the
    caller to spool. `blob`, when given, is an already stored Blob of these bytes (SMTP shares
    one blob between mailboxes and the spool). `resolutions`, when given, are the
    recipient_resolve results for `recipients`, made by the caller before its transaction
    (so that SQLite's write lock is not held while aliases are expanded); `summary`, likewise,
    is headers.summarize_and_spam(raw).

    Sieve (mailboxes.mda): each mailbox's scripts decide where its copies go and what is
    sent; `plans` are mda.plan's results made by the caller before its transaction, else
    they are made here (with `sieve` false, no script runs: the filing of a copy the user
    asked for). `mail_from` is the envelope sender the scripts see.
    """
    if resolutions is None:
        domains: dict = {}
        resolutions = [recipient_resolve(address, domain_cache=domains) for address in recipients]
    wanted = sorted({mid for r in resolutions for mid in r.mailbox_ids})
    if plans is None and sieve and wanted:
        from mailboxes import mda

        summary = summary or headers.summarize_and_spam(raw)
        plans = mda.plan(
            raw=raw,
            mail_from=mail_from,
            resolutions=resolutions,
            spam=summary[1],
            junk_mailbox_ids=junk_mailbox_ids,
        )
    filed = (
        _file_into_mailboxes(
            raw,
            wanted,
            internal_date=internal_date,
            blob=blob,
            summary=summary,
            plans=plans,
            junk_mailbox_ids=junk_mailbox_ids,
        )
        if wanted
        else set()
    )
    results = []
    for resolution in resolutions:
        if not resolution.hosted:
            results.append(RecipientResult(resolution.address, Outcome.NOT_HOSTED))
        elif not resolution.exists:
            results.append(RecipientResult(resolution.address, Outcome.NO_SUCH_USER))
        else:
            taken = tuple(m for m in resolution.mailbox_ids if m in filed)
            if resolution.mailbox_ids and not (taken or resolution.remote or resolution.report):
                results.append(RecipientResult(resolution.address, Outcome.OVER_QUOTA))
            else:
                results.append(
                    RecipientResult(resolution.address, Outcome.DELIVERED, taken, resolution.remote)
                )
    return results


def _file_into_mailboxes(
    raw: bytes,
    mailbox_ids: Sequence[int],
    *,
    internal_date: datetime | None,
    blob: Blob | None = None,
    summary: tuple[dict, bool] | None = None,
    plans: Mapping[int, MailboxPlan] | None = None,
    junk_mailbox_ids: Iterable[int] | None = None,
) -> set[int]:
    """File the message into every mailbox with room for it; return the ids that took it.

    The hot path of SMTP: one SELECT (mailboxes locked, with their INBOX and Junk ids), one
    UPDATE ... RETURNING per mailbox (the folder's UIDs and counters), one INSERT of the
    messages and one UPDATE of the mailboxes' usage (plus the blob row when not given). On
    PostgreSQL the last three are one statement per mailbox (_file_shared) for the shared
    bytes unseen, the copy a mailbox without a Sieve plan gets.
    A mailbox with a Sieve plan gets the copies, flags and folders its plan names, and the
    plan's messages are spooled, all in this same transaction (_file_planned).
    """
    db = connections[DEFAULT_DB_ALIAS]
    fields, spam = summary or headers.summarize_and_spam(raw)
    junk_ids = None if junk_mailbox_ids is None else set(junk_mailbox_ids)
    size = len(raw)
    when = internal_date or timezone.now()
    plans = plans or {}
    # Bytes first (written and synced), rows after: a crash in between leaves an orphan file
    # for blob_collect_garbage, never a row without its bytes.
    written = blob_write(raw) if blob is None else None
    # No savepoint: nothing here catches its own errors, so a failure rolls back the caller's
    # whole transaction (Django refuses further queries in it), never a half-filed message.
    with transaction.atomic(savepoint=False):
        mailboxes = _lock_mailboxes_with_folders(mailbox_ids)
        # (folder id, mailbox id, copy): copy None is the shared bytes, unseen, no flags
        targets: list[tuple[int, int, _Copy | None]] = []
        usage: dict[int, tuple[int, int]] = {}  # mailbox id: (octets, messages) filed
        planned: list[tuple[_Target, MailboxPlan]] = []
        for mailbox in mailboxes:
            plan = plans.get(mailbox.pk)
            if not mailbox.locked and (plan is not None or _over_quota(mailbox, size)):
                if not _lock_again(mailbox):
                    continue  # deleted since its read: nothing is filed
            if plan is not None:
                copies = _plan_copies(mailbox, plan, raw, fields)
                if copies is None:
                    continue  # over quota: nothing of the plan happens (the retry runs it)
                planned.append((mailbox, plan))
                for folder_id, copy in copies:
                    targets.append((folder_id, mailbox.pk, copy))
                    octets, count = usage.get(mailbox.pk, (0, 0))
                    usage[mailbox.pk] = (octets + copy.size, count + 1)
                continue
            if _over_quota(mailbox, size):
                continue
            junk = spam if junk_ids is None else mailbox.pk in junk_ids
            folder_id = (junk and mailbox.junk_id) or mailbox.inbox_id
            if folder_id is not None:
                targets.append((folder_id, mailbox.pk, None))
                usage[mailbox.pk] = (size, 1)
        # Folder rows are locked by their UPDATE, in id order (the lock order above).
        targets.sort(key=lambda t: (t[0], t[1]))
        rows = []
        filed = {mailbox.pk for mailbox, _ in planned}
        for folder_id, mailbox_id, copy in targets:
            if copy is None and db.vendor == "postgresql":
                if blob is None:
                    blob = blob_row_create(name=written, raw=raw)
                row = {"blob_id": blob.pk, "size": size, "internal_date": when, **fields}
                del usage[mailbox_id]  # added by that statement, or nothing was filed
                if _file_shared(db, folder_id, mailbox_id, row):
                    _add_kept_usage(mailboxes, mailbox_id, size, 1)
                    filed.add(mailbox_id)
                continue
            if copy is None and db.vendor == "sqlite":
                if blob is None:
                    blob = blob_row_create(name=written, raw=raw)
                row = {"blob_id": blob.pk, "size": size, "internal_date": when, **fields}
                if groupcommit.merge_later(_file_merged, (folder_id, mailbox_id, row)):
                    del usage[mailbox_id]  # added by _file_merged
                    _add_kept_usage(mailboxes, mailbox_id, size, 1)
                    filed.add(mailbox_id)
                    continue
            unseen = 0 if copy is not None and copy.system & SystemFlag.SEEN else 1
            reserved = _reserve_one(folder_id, copy.size if copy else size, unseen)
            if reserved is None:  # the folder was deleted since the SELECT
                octets, count = usage[mailbox_id]
                usage[mailbox_id] = (octets - (copy.size if copy else size), count - 1)
                continue
            uid, modseq = reserved
            if copy is not None:
                row_blob = copy.blob(blob, written, raw)
                if copy.raw is None and blob is None:
                    blob = row_blob
                row = {
                    **copy.fields,
                    **Flags(copy.system).columns(),
                    "keywords": " ".join(copy.keywords),
                }
                row_size = copy.size
            else:
                if blob is None:
                    blob = blob_row_create(name=written, raw=raw)
                row_blob, row, row_size = blob, fields, size
            filed.add(mailbox_id)
            rows.append(
                {
                    "folder_id": folder_id,
                    "uid": uid,
                    "modseq": modseq,
                    "blob_id": row_blob.pk,
                    "size": row_size,
                    "internal_date": when,
                    **row,
                }
            )
            events.publish(ChangeEvent(mailbox_id, folder_id, "exists", (uid,), modseq))
        if rows:
            _messages_insert(rows)
            for (octets, count), ids in _usage_add(db, usage).items():
                for mailbox_id in ids:
                    _add_kept_usage(mailboxes, mailbox_id, octets, count)
        kept = groupcommit.batch_rows("mailbox")
        for mailbox, plan in planned:
            if kept is not None and not all(_plain_keep(f) for f in plan.filings):
                kept.pop(mailbox.pk, None)  # its folders may have changed (fileinto :create)
            _plan_carry_out(mailbox.pk, plan)
    if blob is None and written is not None:
        blob_discard(written)
    return filed


def _usage_add(
    db: BaseDatabaseWrapper, usage: Mapping[int, tuple[int, int]]
) -> dict[tuple[int, int], list[int]]:
    """Add each mailbox's (octets, messages) filed to its usage, one UPDATE per amount;
    return the mailbox ids by amount."""
    grouped = _by_amount(usage)
    table = db.ops.quote_name(Mailbox._meta.db_table)
    with db.prepared_cursor() as cursor:
        for (octets, count), ids in grouped.items():
            marks = ", ".join(["%s"] * len(ids))
            cursor.execute(
                f"UPDATE {table} {_ADD_USAGE_SQL} WHERE id IN ({marks})", [octets, count, *ids]
            )
    return grouped


def _by_amount(usage: Mapping[int, tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    """Mailbox ids grouped by the (octets, messages) to add to their usage (one UPDATE per
    amount)."""
    grouped: dict[tuple[int, int], list[int]] = defaultdict(list)
    for mailbox_id, amount in usage.items():
        if amount[1]:
            grouped[amount].append(mailbox_id)
    return grouped


class _Variant:
    """The bytes of a mailbox's copies: the shared ones (raw None) or its own (editheader,
    an error note), stored once for all of that mailbox's folders."""

    def __init__(self, raw: bytes | None, fields: dict) -> None:
        self.raw = raw
        self.fields = fields if raw is None else headers.summarize(raw)
        self.stored: Blob | None = None

    def blob(self, shared: Blob | None, written: str | None, raw: bytes) -> Blob:
        if self.raw is None:
            return shared if shared is not None else blob_row_create(name=written, raw=raw)
        if self.stored is None:
            self.stored = blob_store(self.raw)
        return self.stored


@dataclass
class _Copy:
    variant: _Variant
    size: int
    system: SystemFlag
    keywords: list[str]

    @property
    def raw(self) -> bytes | None:
        return self.variant.raw

    @property
    def fields(self) -> dict:
        return self.variant.fields

    def blob(self, shared: Blob | None, written: str | None, raw: bytes) -> Blob:
        return self.variant.blob(shared, written, raw)


def _plan_copies(
    mailbox: _Target, plan: MailboxPlan, raw: bytes, fields: dict
) -> list[tuple[int, _Copy]] | None:
    """The (folder id, copy) pairs a Sieve plan files for a locked mailbox, folders created
    where the plan says :create; None when they do not fit its quota."""
    if all(_plain_keep(f) for f in plan.filings):
        # The implicit keep alone (the common case of a script that matched nothing): the
        # locked row already names INBOX and Junk, no folder query needed.
        folders = [(mailbox.inbox_id, "INBOX", ""), (mailbox.junk_id, "", SpecialUse.JUNK.value)]
        folders = [f for f in folders if f[0] is not None]
    else:
        folders = list(
            Folder.objects.filter(mailbox_id=mailbox.pk).values_list("id", "name", "special_use")
        )
    variants: dict[int, _Variant] = {}
    chosen: dict[int, _Copy] = {}
    for filing in plan.filings:
        folder_id = _filing_folder(mailbox, filing, folders)
        if folder_id is None:
            continue
        variant = variants.setdefault(id(filing.raw), _Variant(filing.raw, fields))
        parsed = Flags.parse(filing.flags)
        keywords = [
            k for k in parsed.keywords if len(k) <= settings.MAILHOST_IMAP_MAX_KEYWORD_LENGTH
        ]
        if folder_id in chosen:  # one copy per folder, flags merged (RFC 5228 4.1)
            old = chosen[folder_id]
            old.system |= parsed.system
            old.keywords += [
                k for k in keywords if k.lower() not in {o.lower() for o in old.keywords}
            ]
            continue
        size = len(filing.raw) if filing.raw is not None else len(raw)
        chosen[folder_id] = _Copy(variant, size, parsed.system, keywords)
    for folder_id, copy in chosen.items():
        copy.keywords = _keywords_that_fit(folder_id, copy.keywords)
    total = sum(copy.size for copy in chosen.values())
    if chosen and _over_quota(mailbox, total, len(chosen)):
        return None
    return list(chosen.items())


def _plain_keep(filing: Filing) -> bool:
    return filing.keep and not filing.create and filing.folder_id is None


def _keywords_that_fit(folder_id: int, keywords: list[str]) -> list[str]:
    """A script's keywords within the per-message and per-folder caps (the rest dropped:
    a filter never refuses a message over a keyword)."""
    keywords = keywords[: settings.MAILHOST_IMAP_MAX_KEYWORDS_PER_MESSAGE]
    if not keywords:
        return keywords
    existing = {k.lower() for k in folder_keywords(folder_id)}
    room = settings.MAILHOST_IMAP_MAX_KEYWORDS_PER_FOLDER - len(existing)
    kept = []
    for keyword in keywords:
        if keyword.lower() in existing:
            kept.append(keyword)
        elif room > 0:
            kept.append(keyword)
            existing.add(keyword.lower())
            room -= 1
    return kept


def _filing_folder(
    mailbox: _Target, filing: Filing, folders: list[tuple[int, str, str]]
) -> int | None:
    """The folder a filing goes to: its :mailboxid, its special use, its name, a folder
    made for it (:create), else the implicit keep's (RFC 5228 4.1: a fileinto that cannot
    be done must not lose the message)."""
    if filing.folder_id is not None and any(f[0] == filing.folder_id for f in folders):
        return filing.folder_id
    if filing.special_use:
        for folder_id, _, special_use in folders:
            if special_use == filing.special_use:
                return folder_id
    try:
        name = folder_name_validate(filing.folder)
    except FolderError:
        name = None
    if name is not None:
        for folder_id, folder_name, _ in folders:
            if folder_name == name:
                return folder_id
        if filing.create:
            created = folder_create(
                mailbox=Mailbox(pk=mailbox.pk),
                name=name,
                special_use=filing.special_use if filing.special_use in SpecialUse.values else "",
            )
            folders.append((created.pk, created.name, created.special_use))
            return created.pk
    if not filing.keep:
        logger.info(
            "sieve fileinto missing mailbox=%s folder=%r: INBOX instead", mailbox.pk, filing.folder
        )
    return mailbox.inbox_id


def _plan_carry_out(mailbox_id: int, plan: MailboxPlan) -> None:
    """The rest of a Sieve plan, in the delivery transaction: spool what it sends (a vacation
    reply only when due), remember its duplicate ids, log what it did once committed."""
    from mailboxes import mda

    if plan.duplicates:
        mda.duplicates_record(mailbox_id=mailbox_id, duplicates=plan.duplicates)
    sent = []
    for outgoing in plan.outgoing:
        if outgoing.vacation is not None:
            sender, handle, seconds = outgoing.vacation
            if not mda.vacation_due(
                mailbox_id=mailbox_id, sender=sender, handle=handle, seconds=seconds
            ):
                sent.append(f"{outgoing.kind}-not-due")
                continue
        # Our own notices leave with the null sender and ask for no DSN (RFC 3834 3.3).
        outbound().spool(
            blob=blob_store(outgoing.raw),
            mail_from=outgoing.mail_from,
            recipients=outgoing.recipients,
            notify="NEVER" if not outgoing.mail_from else "",
            smtputf8=not all(r.isascii() for r in outgoing.recipients),
            body_8bit=not outgoing.raw.isascii(),
        )
        sent.append(f"{outgoing.kind}:{','.join(outgoing.recipients)}")
    if plan.summary == "keep" and not sent and not plan.error:
        return  # nothing happened that the default delivery would not have done
    line = f'sieve delivered mailbox={mailbox_id} actions="{plan.summary}"'
    if sent:
        line += f' sent="{" ".join(sent)}"'
    if plan.error:
        line = f'sieve error mailbox={mailbox_id} reason="{plan.error}" action=keep'
    kinds = ["error"] if plan.error else _action_kinds(plan.summary)

    def log() -> None:
        from mailhost import metrics

        logger.info("%s", line)
        metrics.sieve_actions(kinds)

    transaction.on_commit(log)


_SIEVE_KINDS = {
    "fileinto",
    "keep",
    "redirect",
    "vacation",
    "reject",
    "ereject",
    "notify",
    "discard",
}


def _action_kinds(summary: str) -> list[str]:
    """The action names of a plan's summary ("fileinto:Work redirect:a@b" -> fileinto,
    redirect) for the metric; skipped and looped ones count under what they were."""
    kinds = [re.split(r"[:(-]", word, maxsplit=1)[0] for word in summary.split()]
    return [k for k in kinds if k in _SIEVE_KINDS]


_message_insert_sql: tuple[str, list, list] | None = None


def _message_insert_plan(db: BaseDatabaseWrapper) -> tuple[str, list, list]:
    """The INSERT's head (`INSERT INTO table (columns) `), the fields in its column order,
    and per field what each row needs: its name, its default, whether it is a datetime."""
    global _message_insert_sql
    if _message_insert_sql is None:
        # The folder, UID and MODSEQ first: _file_shared selects them from the folder's UPDATE.
        fields = sorted(
            (f for f in Message._meta.concrete_fields if not f.primary_key),
            key=lambda f: f.attname not in _RESERVED_COLUMNS,
        )
        columns = ", ".join(db.ops.quote_name(f.column) for f in fields)
        table = db.ops.quote_name(Message._meta.db_table)
        plan = [
            (f.attname, f.get_default, f.get_internal_type() == "DateTimeField") for f in fields
        ]
        _message_insert_sql = (f"INSERT INTO {table} ({columns}) ", fields, plan)
    return _message_insert_sql


_RESERVED_COLUMNS = ("folder_id", "uid", "modseq")


def _message_params(db: BaseDatabaseWrapper, plan: list, rows: list[dict]) -> list:
    """The rows' values (attribute name -> value; the rest get their defaults) in `plan`'s
    order, as the INSERT sends them."""
    adapt = db.ops.adapt_datetimefield_value
    params: list = []
    for row in rows:
        for attname, default, is_datetime in plan:
            value = row[attname] if attname in row else default()
            if is_datetime and value is not None:
                value = adapt(value)
            params.append(value)
    return params


def _messages_insert(rows: list[dict]) -> None:
    """INSERT new Message rows (attribute name -> value; the rest get their defaults) in one
    plain statement: bulk_create spent more CPU building it than the database running it."""
    db = connections[DEFAULT_DB_ALIAS]
    head, fields, plan = _message_insert_plan(db)
    head += "VALUES "
    params = _message_params(db, plan, rows)
    marks = "(" + ", ".join(["%s"] * len(fields)) + ")"
    per_statement = max(1, (db.features.max_query_params or 999) // len(fields))
    with db.prepared_cursor() as cursor:
        for start in range(0, len(rows), per_statement):
            count = min(per_statement, len(rows) - start)
            chunk = params[start * len(fields) : (start + count) * len(fields)]
            cursor.execute(head + ", ".join([marks] * count), chunk)


def blob_row_create(*, name: str, raw: bytes) -> Blob:
    """The Blob row of the bytes blob_write named (holding them when the name is inline),
    in one plain INSERT ... RETURNING."""
    return blob_rows_create([(name, raw)])[0]


def blob_rows_create(blobs: Sequence[tuple[str, bytes]]) -> list[Blob]:
    """blob_row_create of each (name, bytes), in their order, in one multi-row INSERT ...
    RETURNING: a group-commit batch's blob rows are one round trip, not one a message
    (mailboxes.groupcommit, GroupCommitter.run_after)."""
    return _blob_rows_and_locks(blobs, [])[0]


def delivery_batch_start(pieces: Sequence[tuple[str, bytes, Sequence[Resolution]]]) -> list[Blob]:
    """The first statements of a group-commit transaction of deliveries (run_after's
    `before`): the blob row of each piece's (name, bytes), and, where the transaction keeps
    its rows (groupcommit.batch_rows), the row of every mailbox its recipients' resolutions
    file into, read for all the pieces at once and kept, so that their
    _lock_mailboxes_with_folders find them there. On PostgreSQL the INSERT, that SELECT and
    the transaction's BEGIN are one round trip (statements_together): a lone message's
    transaction 4 -> 3 round trips, a batch of N to one mailbox N + 3 -> N + 2.

    On PostgreSQL those rows are read, not locked (`_Target.locked` false): each message's
    filing checks the quota and adds the usage itself, under the lock its UPDATE takes
    (_file_shared), so the mailbox row is locked from the batch's last round trip before its
    COMMIT on, not from its first: every other batch into that mailbox waited for it from
    the BEGIN, its blob rows and the Python of each of its messages included. A batch of
    several mailboxes still locks them all first, in id order (the lock order above), with
    one SELECT ... FOR UPDATE kept and sent ahead of its filings (groupcommit.send_later), or
    in this first round trip where nothing is kept (a lone message)."""
    db = connections[DEFAULT_DB_ALIAS]
    kept = groupcommit.batch_rows("mailbox")
    wanted: list[int] = []
    if kept is not None:
        ids = {mid for _, _, resolutions in pieces for r in resolutions for mid in r.mailbox_ids}
        wanted = sorted(ids - kept.keys())
    late = db.features.has_select_for_update and (
        len(wanted) == 1 or (len(wanted) > 1 and groupcommit.sends_later())
    )
    blobs, targets = _blob_rows_and_locks(
        [(name, raw) for name, raw, _ in pieces], wanted, lock=not late
    )
    if kept is not None:
        kept.update((target.pk, target) for target in targets)
    if late and len(wanted) > 1:
        table = db.ops.quote_name(Mailbox._meta.db_table)
        marks = ", ".join(["%s"] * len(wanted))
        lock = f"SELECT id FROM {table} WHERE id IN ({marks}) ORDER BY id FOR UPDATE"
        groupcommit.send_later(lock, wanted, _nothing_then)
    return blobs


def _nothing_then(row: tuple | None) -> None:
    """A kept statement's `then` with nothing to do: a lock taken."""


def _blob_rows_and_locks(
    blobs: Sequence[tuple[str, bytes]], mailbox_ids: list[int], *, lock: bool = True
) -> tuple[list[Blob], list[_Target]]:
    """blob_rows_create, and _select_mailboxes_with_folders of `mailbox_ids` (sorted) after
    it, the statements sent together (one round trip on PostgreSQL); `lock` false: the
    mailboxes read without FOR UPDATE."""
    db = connections[DEFAULT_DB_ALIAS]
    table = db.ops.quote_name(Blob._meta.db_table)
    now = timezone.now()
    created_at = db.ops.adapt_datetimefield_value(now)
    rows = [(name, raw, raw if Blob.name_is_inline(name) else None) for name, raw in blobs]
    per_statement = max(1, (db.features.max_query_params or 999) // 4)
    chunks = [rows[start : start + per_statement] for start in range(0, len(rows), per_statement)]
    if mailbox_ids and not lock and len(chunks) == 1 and db.vendor == "postgresql":
        return _blob_rows_and_read(db, table, now, rows, mailbox_ids)
    with contextlib.ExitStack() as stack:
        inserts = [stack.enter_context(db.prepared_cursor()) for _ in chunks]
        select = stack.enter_context(db.prepared_cursor()) if mailbox_ids else None
        with db.statements_together():
            for cursor, chunk in zip(inserts, chunks, strict=True):
                cursor.execute(*_blob_insert(table, chunk, created_at))
            if select is not None:
                select.execute(*_mailboxes_with_folders_query(db, mailbox_ids, lock=lock))
        ids = {name: blob_id for cursor in inserts for blob_id, name in cursor.fetchall()}
        exact = lock or not db.features.has_select_for_update
        read = select.fetchall() if select is not None else []
        targets = [_Target(*row, locked=exact) for row in read]
    return _blobs_made(rows, ids, now), targets


def _blob_insert(table: str, rows: list, created_at: object) -> tuple[str, list]:
    """The INSERT of these (name, raw, data) blob rows and its parameters, RETURNING each
    row's id and name (by name: RETURNING's order is not promised)."""
    params: list = []
    for name, raw, data in rows:
        params += [name, len(raw), created_at, data]
    sql = (
        f"INSERT INTO {table} (name, size, created_at, data) VALUES "
        + ", ".join(["(%s, %s, %s, %s)"] * len(rows))
        + " RETURNING id, name"
    )
    return sql, params


def _blobs_made(rows: list, ids: Mapping[str, int], now: datetime) -> list[Blob]:
    """The Blob of each (name, raw, data) row inserted, by the ids its INSERT returned."""
    return [
        Blob(id=ids[name], name=name, size=len(raw), created_at=now, data=data)
        for name, raw, data in rows
    ]


def _blob_rows_and_read(
    db: BaseDatabaseWrapper, table: str, now: datetime, rows: list, mailbox_ids: list[int]
) -> tuple[list[Blob], list[_Target]]:
    """_blob_rows_and_locks' INSERT and its mailboxes' read without their locks, on PostgreSQL,
    in one statement (`WITH b AS (INSERT ... RETURNING) SELECT ARRAY(b's rows), ARRAY(the
    read's rows)`, rows in binary as plainsql.selects_together's): the read's SELECT sees the
    mailboxes, not the blob rows, so the two need not be apart; the transaction's BEGIN still
    goes with this one. Each statement in psycopg's pipeline costs its Python: callgrind of
    bench/profile_accept.py on PostgreSQL (400 against 100 messages), 3.90 -> 3.82 M
    instructions a message."""
    insert, params = _blob_insert(table, rows, db.ops.adapt_datetimefield_value(now))
    read, read_params = _mailboxes_with_folders_query(db, mailbox_ids, lock=False)
    sql = (
        f"WITH b AS ({insert}) SELECT ARRAY(SELECT ROW(b.id, b.name) FROM b),"
        f" ARRAY(SELECT ROW(q.*) FROM ({read}) q)"
    )
    with db.prepared_cursor(binary=True) as cursor:
        with db.statements_together():
            cursor.execute(sql, [*params, *read_params])
        made, read_rows = cursor.fetchone()
    ids = {name: blob_id for blob_id, name in made}
    return _blobs_made(rows, ids, now), [_Target(*row, locked=False) for row in read_rows]


@dataclass
class _Target:
    pk: int
    quota: int | None
    used_bytes: int
    quota_messages: int | None
    used_messages: int
    inbox_id: int | None
    junk_id: int | None
    # False: read without its row lock (delivery_batch_start on PostgreSQL), so its usage
    # may be behind another transaction's: what it says of the quota is a guess, which the
    # filing's own statement makes good (_file_shared), or _lock_again before anything else.
    locked: bool = True


def _lock_mailboxes_with_folders(mailbox_ids: Iterable[int]) -> list[_Target]:
    """_lock_mailboxes in one query that also reads each mailbox's INBOX id (`inbox_id`) and
    first Junk folder id (`junk_id`), as select-list subqueries (their rows are not locked).
    Plain SQL: building this with the ORM cost more CPU than running it.

    In a group-commit transaction (mailboxes.groupcommit.batch_rows) a mailbox locked before
    in it (by delivery_batch_start, for every message of the batch at once, or by an earlier
    message) is not locked and read again: its row, locked to the COMMIT, is the one kept
    then, its usage kept up to date by _file_into_mailboxes (_add_kept_usage). A batch of N
    messages to one mailbox made N of these SELECTs, each a round trip under the batch's
    locks on PostgreSQL; now one, sent with the blob rows' INSERT."""
    ids = sorted(set(mailbox_ids))
    if not ids:
        return []
    kept = groupcommit.batch_rows("mailbox")
    if kept is None:
        return _select_mailboxes_with_folders(ids)
    missing = [mailbox_id for mailbox_id in ids if mailbox_id not in kept]
    if missing:
        kept.update((target.pk, target) for target in _select_mailboxes_with_folders(missing))
    return [kept[mailbox_id] for mailbox_id in ids if mailbox_id in kept]


def _add_kept_usage(locked: list[_Target], mailbox_id: int, octets: int, count: int) -> None:
    """Add what a statement added to a locked mailbox's usage to its row as read (a later
    message of a group-commit batch checks its quota against it: batch_rows)."""
    for target in locked:
        if target.pk == mailbox_id:
            target.used_bytes += octets
            target.used_messages += count


def _select_mailboxes_with_folders(ids: list[int]) -> list[_Target]:
    db = connections[DEFAULT_DB_ALIAS]
    with db.prepared_cursor() as cursor:
        cursor.execute(*_mailboxes_with_folders_query(db, ids))
        return [_Target(*row) for row in cursor.fetchall()]


def _lock_again(target: _Target) -> bool:
    """Lock a mailbox read without its lock and read it again under it (a round trip), in
    place: a Sieve plan's copies, and a message its read said would not fit, are decided
    on the exact usage. False when it was deleted since: nothing is filed, and its kept row
    is forgotten (a plan with nothing to file, its folders gone, would count as filed)."""
    if target.locked:
        return True
    found = _select_mailboxes_with_folders([target.pk])
    target.locked = True
    if not found:
        target.inbox_id = target.junk_id = None
        kept = groupcommit.batch_rows("mailbox")
        if kept is not None:
            kept.pop(target.pk, None)
        return False
    again = found[0]
    for name in ("quota", "used_bytes", "quota_messages", "used_messages", "inbox_id", "junk_id"):
        setattr(target, name, getattr(again, name))
    return True


def _mailboxes_with_folders_query(
    db: BaseDatabaseWrapper, ids: list[int], *, lock: bool = True
) -> tuple[str, list]:
    q = db.ops.quote_name
    mailbox, folder = q(Mailbox._meta.db_table), q(Folder._meta.db_table)
    first_folder = f"SELECT f.id FROM {folder} f WHERE f.mailbox_id = m.id AND f.%s = %%s"
    sql = (
        f"SELECT m.id, {_USAGE_SQL}, ({first_folder % 'name'} ORDER BY f.id LIMIT 1), "
        f"({first_folder % 'special_use'} ORDER BY f.id LIMIT 1) FROM {mailbox} m "
        f"WHERE m.id IN ({', '.join(['%s'] * len(ids))}) ORDER BY m.id"
    )
    if lock and db.features.has_select_for_update:
        sql += " FOR UPDATE"
    return sql, ["INBOX", SpecialUse.JUNK.value, *ids]


_file_shared_sql: str | None = None


def _file_shared(db: BaseDatabaseWrapper, folder_id: int, mailbox_id: int, row: dict) -> bool:
    """PostgreSQL: file an unseen message without flags in one statement, where elsewhere it
    is three: _reserve_one's UPDATE of the folder, the message's INSERT with the UID and
    MODSEQ that UPDATE returns, and the mailbox's usage. Each is a round trip made under the
    batch's row locks (mailboxes.groupcommit), which every other delivery to that mailbox
    waits on; in a batch of several messages the statement is kept and sent with the batch's
    other filings (groupcommit.send_later).

    The statement adds to the mailbox's usage only where the message fits its quota (the
    rule of quotas.fits, in SQL), and locks the mailbox row by that UPDATE, ahead of the
    folder's (the lock order above): a mailbox read without its lock (delivery_batch_start)
    is locked here, and a concurrent transaction that filled it since that read is waited
    for and then seen (READ COMMITTED re-checks an updated row's WHERE on its newest
    version), so no two transactions both pass a quota that only one fits. False when the
    message does not fit or the folder is gone (nothing is filed, the usage is as it was);
    a kept statement that files nothing raises instead, and its batch runs again with
    savepoints, each message alone on rows read under their locks."""
    global _file_shared_sql
    head, _fields, plan = _message_insert_plan(db)
    if _file_shared_sql is None:
        q = db.ops.quote_name
        folder, mailbox = q(Folder._meta.db_table), q(Mailbox._meta.db_table)
        marks = ", ".join(["%s"] * (len(plan) - len(_RESERVED_COLUMNS)))
        _file_shared_sql = (
            f"WITH u AS (UPDATE {mailbox} {_ADD_USAGE_SQL} WHERE id = %s "
            "AND (COALESCE(quota, 0) = 0 OR used_bytes + %s <= quota) "
            "AND (COALESCE(quota_messages, 0) = 0 OR used_messages + 1 <= quota_messages) "
            "RETURNING id), "
            f"f AS (UPDATE {folder} SET uidnext = uidnext + 1, "
            "highestmodseq = highestmodseq + 1, message_count = message_count + 1, "
            "unseen_count = unseen_count + 1, total_size = total_size + %s "
            "WHERE id = %s AND EXISTS (SELECT FROM u) "
            "RETURNING id, uidnext - 1 AS uid, highestmodseq AS modseq), "
            f"i AS ({head}SELECT f.id, f.uid, f.modseq, {marks} FROM f RETURNING uid, modseq) "
            "SELECT (SELECT count(*) FROM u), (SELECT uid FROM i), (SELECT modseq FROM i)"
        )
    values = _message_params(db, plan[len(_RESERVED_COLUMNS) :], [row])
    size = row["size"]
    params = [size, 1, mailbox_id, size, size, folder_id, *values]

    def filed(outcome: tuple[int, int | None, int | None]) -> bool:
        _, uid, modseq = outcome
        if uid is None:
            return False
        events.publish(ChangeEvent(mailbox_id, folder_id, "exists", (uid,), modseq))
        return True

    def filed_later(outcome: tuple[int, int | None, int | None]) -> None:
        if not filed(outcome):
            # No usage added: the mailbox full, or deleted since its read (the statement
            # cannot tell them apart). Either way this only rolls the batch back; its run
            # with savepoints reads the mailbox under its lock and answers as a lone
            # message's filing does (a recipient whose mailbox is gone: over_quota).
            raise (NotFound if outcome[0] else QuotaExceeded)(f"not filed in {folder_id}")

    if groupcommit.send_later(_file_shared_sql, params, filed_later):
        return True
    with db.prepared_cursor() as cursor:
        cursor.execute(_file_shared_sql, params)
        outcome = cursor.fetchone()
    if filed(outcome):
        return True
    if outcome[0]:  # the folder went after the usage was added
        _add_usage(mailbox_id, -size, -1)
    return False


def _file_merged(filings: list[tuple[int, int, dict]]) -> None:
    """SQLite: the (folder id, mailbox id, row) filings of a batch's shared, unseen copies
    that _file_into_mailboxes kept (groupcommit.merge_later), made as one UPDATE ... RETURNING
    of each folder (the UIDs, MODSEQs and counters of all its messages, as _reserve_one would
    have given them one by one), one INSERT of the messages and one UPDATE of the mailboxes'
    usage per amount: filed one by one they were three statements a message, each made under
    the writer lock and each a release of the GIL that its holder must win back. Raises
    NotFound when a folder is gone (the batch runs again with savepoints, each piece alone)."""
    db = connections[DEFAULT_DB_ALIAS]
    by_folder: dict[int, list[tuple[int, dict]]] = defaultdict(list)
    for folder_id, mailbox_id, row in filings:
        by_folder[folder_id].append((mailbox_id, row))
    table = db.ops.quote_name(Folder._meta.db_table)
    rows: list[dict] = []
    usage: dict[int, tuple[int, int]] = {}
    filed: list[ChangeEvent] = []
    with db.prepared_cursor() as cursor:
        for folder_id, pieces in by_folder.items():
            count, octets = len(pieces), sum(row["size"] for _, row in pieces)
            cursor.execute(
                f"UPDATE {table} SET uidnext = uidnext + %s, highestmodseq = highestmodseq + %s, "
                "message_count = message_count + %s, unseen_count = unseen_count + %s, "
                "total_size = total_size + %s WHERE id = %s RETURNING uidnext, highestmodseq",
                [count, count, count, count, octets, folder_id],
            )
            found = cursor.fetchone()
            if found is None:
                raise NotFound(f"folder {folder_id} is gone")
            first_uid, first_modseq = found[0] - count, found[1] - count + 1
            for n, (mailbox_id, row) in enumerate(pieces):
                uid, modseq = first_uid + n, first_modseq + n
                rows.append({"folder_id": folder_id, "uid": uid, "modseq": modseq, **row})
                had = usage.get(mailbox_id, (0, 0))
                usage[mailbox_id] = (had[0] + row["size"], had[1] + 1)
                filed.append(ChangeEvent(mailbox_id, folder_id, "exists", (uid,), modseq))
    _messages_insert(rows)
    _usage_add(db, usage)
    for event in filed:
        events.publish(event)


def _reserve_one(folder_id: int, size: int, unseen: int = 1) -> tuple[int, int] | None:
    """_reserve of one unseen message in one statement: the UPDATE locks the folder row and
    RETURNING gives the new UIDNEXT and HIGHESTMODSEQ (SQLite 3.35+, PostgreSQL), so the
    UID is the row's UIDNEXT before it and no two writers ever share one. None when the
    folder is gone."""
    db = connections[DEFAULT_DB_ALIAS]
    table = db.ops.quote_name(Folder._meta.db_table)
    with db.prepared_cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1, "
            "message_count = message_count + 1, unseen_count = unseen_count + %s, "
            "total_size = total_size + %s WHERE id = %s RETURNING uidnext, highestmodseq",
            [unseen, size, folder_id],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return row[0] - 1, row[1]


def message_append(
    *,
    folder: Folder,
    raw: bytes,
    flags: Iterable[str] | Flags = (),
    internal_date: datetime | None = None,
    mime_cache: dict | None = None,
) -> Message:
    """Store a message in a folder (IMAP APPEND, webmail drafts and Sent copies) with its
    flags: a Flags value, or names as an IMAP client gives them. `mime_cache`: the protocol
    caches of its bytes, as message_caches_put would write them later (IMAP's structure).

    Raises QuotaExceeded when the mailbox has no room, NotFound when the folder is gone.
    """
    size = len(raw)
    mailbox = _mailbox_usage([folder.mailbox_id], lock=False).get(folder.mailbox_id)
    if mailbox is None:
        raise Mailbox.DoesNotExist("Mailbox matching query does not exist.")
    if _over_quota(mailbox, size):  # cheap early refusal before writing the bytes
        raise QuotaExceeded(f"mailbox {mailbox.pk} is over quota")
    parsed = flags if isinstance(flags, Flags) else Flags.parse(flags)
    keywords = list(parsed.keywords)
    _check_keywords(keywords)
    summary = headers.summarize(raw)
    name = blob_write(raw)

    def file() -> Message:
        mailbox = _lock_mailboxes([folder.mailbox_id])[folder.mailbox_id]
        if _over_quota(mailbox, size):
            raise QuotaExceeded(f"mailbox {mailbox.pk} is over quota")
        locked = _lock_folders([folder.pk])[folder.pk]
        _check_folder_keywords(folder.pk, keywords)
        blob = blob_row_create(name=name, raw=raw)
        uid, modseq = _reserve(locked, 1, size, 0 if SystemFlag.SEEN in parsed else 1)
        message = Message(
            folder_id=folder.pk,
            uid=uid,
            modseq=modseq,
            blob=blob,
            size=size,
            internal_date=internal_date or timezone.now(),
            keywords=" ".join(keywords),
            mime_cache=mime_cache,
            **parsed.columns(),
            **summary,
        )
        _MESSAGE_INSERT([message], returning=True)
        _add_usage(mailbox.pk, size, 1)
        events.publish(ChangeEvent(mailbox.pk, folder.pk, "exists", (uid,), modseq))
        if locked.special_use == SpecialUse.SENT.value:
            _trust_recipients(mailbox.pk, raw)
        return message

    try:
        # On SQLite a piece of the group committer's transaction (synced), shared with the
        # writes other threads make meanwhile (other sessions' APPENDs, STOREs and EXPUNGEs,
        # port 25's deliveries): one turn of the writer lock and one sync for all of them.
        message = groupcommit.shared_where_writers_take_turns(file)
    except (QuotaExceeded, NotFound, KeywordLimit):
        blob_discard(name)  # refused before any row named it
        raise
    return message


def _trust_recipients(mailbox_id: int, raw: bytes) -> None:
    """A message filed in Sent (a client that sends elsewhere keeps its copy here) says whom
    the mailbox writes to: the spam verdict trusts them (KNOWN_SENDER)."""
    from email.parser import BytesHeaderParser
    from email.policy import compat32
    from email.utils import getaddresses

    parsed = BytesHeaderParser(policy=compat32).parsebytes(headers.header_block(raw))
    values = [
        headers.header_text(v) for name in ("To", "Cc", "Bcc") for v in parsed.get_all(name) or []
    ]
    try:
        addresses = [address for _, address in getaddresses(values) if "@" in address]
    except (RecursionError, ValueError, IndexError):
        return
    outbound().known_senders_add(
        mailbox_id=mailbox_id, addresses=addresses[:100], source="wrote_to"
    )


def messages_append(*, folder: Folder, messages: Sequence[tuple]) -> list[Message]:
    """Store several messages in a folder, all or none (IMAP MULTIAPPEND, RFC 3502 6.3.11:
    "If the server fails to append any message, none are appended"). `messages` holds
    (raw, flags, internal_date) triples. Raises as message_append does, having stored none."""
    stored: list[Message] = []
    try:
        with transaction.atomic():
            for raw, flags, internal_date in messages:
                stored.append(
                    message_append(folder=folder, raw=raw, flags=flags, internal_date=internal_date)
                )
    except BaseException:
        for message in stored:  # their rows are rolled back: their files are nobody's
            blob_discard(message.blob.name)
        raise
    return stored


def message_replace(
    *,
    source: Folder,
    uid: int,
    target: Folder,
    raw: bytes,
    flags: Iterable[str] = (),
    internal_date: datetime | None = None,
) -> Message:
    """IMAP REPLACE (RFC 8508 3): the old message expunged and the new one stored, as one
    transaction (both happen or neither). The old message's octets are freed first, so a
    replacement no larger than what it replaces fits a full mailbox. Raises NotFound when
    the old message is gone, and as message_append does."""
    with transaction.atomic():
        _lock_mailboxes([source.mailbox_id])
        locked = _lock_folders([source.pk])[source.pk]
        rows = list(
            Message.objects.filter(folder_id=source.pk, uid=uid).values_list(
                "uid", "size", "seen", "blob_id"
            )
        )
        if not rows:
            raise NotFound(f"message {uid} is gone")
        _remove_messages(locked, rows)
        return message_append(folder=target, raw=raw, flags=flags, internal_date=internal_date)


def _check_keywords(keywords: Sequence[str]) -> None:
    """One message's keywords against the caps (Dovecot refuses a keyword longer than its
    mail_max_keyword_length, 50, the same way)."""
    longest = settings.MAILHOST_IMAP_MAX_KEYWORD_LENGTH
    if any(len(k) > longest for k in keywords):
        raise KeywordLimit(f"Keywords are at most {longest} characters long")
    per_message = settings.MAILHOST_IMAP_MAX_KEYWORDS_PER_MESSAGE
    if len(keywords) > per_message:
        raise KeywordLimit(f"At most {per_message} keywords per message")


def _check_folder_keywords(folder_id: int, keywords: Sequence[str]) -> None:
    """Keywords new to the folder must fit its cap; call with the folder row locked."""
    if not keywords:
        return
    existing = {k.lower() for k in folder_keywords(folder_id)}
    new = {k.lower() for k in keywords} - existing
    per_folder = settings.MAILHOST_IMAP_MAX_KEYWORDS_PER_FOLDER
    if new and len(existing) + len(new) > per_folder:
        raise KeywordLimit(f"At most {per_folder} keywords per mailbox")


@dataclass
class StoreResult:
    # (uid, flags, modseq) of every message whose flags changed
    changed: list[tuple[int, list[str], int]] = field(default_factory=list)
    # UIDs refused by UNCHANGEDSINCE (RFC 7162 3.1.3: reported as MODIFIED)
    modified: list[int] = field(default_factory=list)
    # UIDs that gained \\Answered (the spam filter learns them as ham)
    answered: list[int] = field(default_factory=list)


def messages_store_flags(
    *,
    folder: Folder,
    uids: Iterable[int],
    flags: Iterable[str],
    mode: str,
    unchangedsince: int | None = None,
    reader: int | None = None,
) -> StoreResult:
    """Change flags: mode "add", "remove" or "replace" (IMAP +FLAGS, -FLAGS, FLAGS).

    With a reader (a mailbox other than the folder's owner, reading it shared), \\Seen is
    the reader's own (PrivateSeen, RFC 4314's "s" right kept per user): the owner's and
    other readers' \\Seen and MODSEQs stay as they were, and the result shows the flags as
    the reader sees them.

    Every changed message gets one new MODSEQ, shared by the operation; unchanged messages
    keep theirs. Rows are grouped by their resulting flags, so `1:* +FLAGS \\Seen` on a large
    folder is a handful of UPDATEs, not one per message.

    Training on replies runs after the flags' transaction, not inside it: that one holds the
    folder row, and training writes rows that lock the mailbox row (foreign keys), the reverse
    of the mailbox-then-folder order every other writer takes (on PostgreSQL, imaptest's
    stress run met deadlocks between STORE and APPEND). Called in autocommit (IMAP's STORE),
    the training is handed to this process's reply trainer (_ReplyTrainer) and the reply does
    not wait for it; inside a caller's transaction its request is part of that transaction.
    """
    if reader is not None and reader != folder.mailbox_id:
        result = _store_flags_reader(folder, uids, list(flags), mode, unchangedsince, reader)
    else:
        result = _store_flags_atomic(folder, uids, flags, mode, unchangedsince)
    if result.answered:
        if connection.in_atomic_block:
            _train_on_replies(folder.pk, result.answered)
        else:
            reply_trainer.put(folder.pk, result.answered)
    return result


@unsynced_atomic()  # flags are not mail: committed without waiting for the disk
def _store_flags_atomic(folder, uids, flags, mode, unchangedsince) -> StoreResult:
    if mode not in {"add", "remove", "replace"}:
        raise ValueError(f"unknown mode {mode}")
    with connection.cursor() as cursor:
        return _store_flags(cursor, folder, uids, flags, mode, unchangedsince)


@unsynced_atomic()
def _store_flags_reader(folder, uids, flags, mode, unchangedsince, reader: int) -> StoreResult:
    """messages_store_flags for a reader of another's folder: the flags but \\Seen on the
    message rows (the owner's \\Seen kept, even by FLAGS), \\Seen in the reader's
    PrivateSeen rows; one new MODSEQ for both (RFC 7162 3.1.3), from the folder's counter."""
    if mode not in {"add", "remove", "replace"}:
        raise ValueError(f"unknown mode {mode}")
    seen_named = SystemFlag.SEEN in Flags.parse(flags)
    shared_flags = [f for f in flags if system_flag(f) is not SystemFlag.SEEN]
    result = StoreResult()
    if not uids:
        return result
    with connection.cursor() as cursor:
        _locked_highestmodseq(cursor, folder)  # the folder row locked before the reads
        # (uid, MODSEQ, keywords, flags...) as the reader sees them: its \Seen, and the
        # later of the message's MODSEQ and its own change (RFC 7162 3.1.3 compares that)
        before = {row[0]: row for row in message_flag_rows(folder.pk, uids, reader=reader)}
        if unchangedsince is not None:
            result.modified = [u for u, row in before.items() if row[1] > unchangedsince]
        wanted = sorted(set(before) - set(result.modified))
        shared = StoreResult()
        if wanted and (mode == "replace" or shared_flags):
            shared = _store_flags(cursor, folder, wanted, shared_flags, mode, None, keep_seen=True)
        result.modified.sort()
        result.answered = shared.answered
        target = {"add": True, "remove": False}.get(mode, seen_named)
        if mode != "replace" and not seen_named:
            target = None
        flip = [u for u in wanted if bool(before[u][3]) != target]
        changed = {u for u, _, _ in shared.changed}
        if target is not None and flip:
            modseq = _private_seen_modseq(cursor, folder, shared)
            PrivateSeen.objects.bulk_create(
                [
                    PrivateSeen(
                        folder_id=folder.pk, reader_id=reader, uid=u, seen=target, modseq=modseq
                    )
                    for u in flip
                ],
                batch_size=1000,
                update_conflicts=True,
                unique_fields=["folder", "reader", "uid"],
                update_fields=["seen", "modseq"],
            )
            events.publish(ChangeEvent(folder.mailbox_id, folder.pk, "flags", tuple(flip), modseq))
            changed.update(flip)
    if changed:
        rows = message_flag_rows(folder.pk, sorted(changed), reader=reader)
        result.changed = [(row[0], names_of_columns(row[2], row[3:]), row[1]) for row in rows]
    return result


def _private_seen_modseq(cursor, folder, shared: StoreResult) -> int:  # noqa: ANN001
    """The MODSEQ of a reader's \\Seen change: the one its STORE's other flags took, else
    the folder's next (HIGHESTMODSEQ moves for everyone; only the reader's rows carry it)."""
    if shared.changed:
        return shared.changed[0][2]
    modseq = _locked_highestmodseq(cursor, folder) + 1
    folders = connection.ops.quote_name(Folder._meta.db_table)
    cursor.execute(f"UPDATE {folders} SET highestmodseq = %s WHERE id = %s", [modseq, folder.pk])
    return modseq


def _locked_highestmodseq(cursor, folder) -> int:  # noqa: ANN001
    """The folder's HIGHESTMODSEQ, its row locked for the caller's transaction."""
    folders = connection.ops.quote_name(Folder._meta.db_table)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    cursor.execute(f"SELECT highestmodseq FROM {folders} WHERE id = %s{lock}", [folder.pk])
    locked = cursor.fetchone()
    if locked is None:
        raise NotFound("folder does not exist")
    return locked[0]


_NOT_REPLY_TRAINED = {SpecialUse.JUNK.value, SpecialUse.TRASH.value, SpecialUse.SENT.value}


def _train_on_replies(folder_id: int, uids: list[int]) -> None:
    """A message the user answered (\\Answered set, as mail clients and the webmail do on
    reply) was wanted: the spam filter learns it as ham (outside Junk, Trash and Sent)."""
    found = list(
        Message.objects.filter(folder_id=folder_id, uid__in=uids)
        .exclude(folder__special_use__in=_NOT_REPLY_TRAINED)
        .values_list("folder__mailbox_id", "pk")
    )
    if found:
        with transaction.atomic():  # the training itself runs once the request commits
            spam_train(mailbox=found[0][0], message_ids=[pk for _, pk in found], spam=False)


class _ReplyTrainer:
    """STORE's training on replies, in a thread of its own: the session's reply does not wait
    for the request's rows and the classifier's counts (5 ms of CPU a STORE under imaptest's
    stress mix), and what the STOREs of GATHER seconds asked for is trained in one pass, a
    folder at a time (one request's statements for all its messages). Work still queued when
    the process dies is not trained (the flags themselves are committed unsynced:
    transactions.py); a clean shutdown waits for it (drain)."""

    GATHER = 1.0

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._wanted: dict[int, set[int]] = defaultdict(set)
        self._busy = False
        self._thread: threading.Thread | None = None
        self._pid = 0

    def put(self, folder_id: int, uids: Iterable[int]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked worker: the parent's thread is not here
                self._pid, self._thread, self._busy = os.getpid(), None, False
                self._wanted = defaultdict(set)
            self._wanted[folder_id].update(uids)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="reply-train", daemon=True)
                self._thread.start()
            self._lock.notify_all()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything asked so far is trained; False when `timeout` ran out."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._wanted or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._pid != os.getpid():
                    return False
                self._lock.wait(left)
        return True

    def _run(self) -> None:
        from django.db import close_old_connections

        while True:
            with self._lock:
                self._busy = False
                self._lock.notify_all()
                while not self._wanted:
                    self._lock.wait()
            time.sleep(self.GATHER)  # let the replies of a burst of STOREs gather
            with self._lock:
                wanted, self._wanted, self._busy = self._wanted, defaultdict(set), True
            for folder_id, uids in wanted.items():
                try:
                    close_old_connections()
                    _train_on_replies(folder_id, sorted(uids))
                except Exception:
                    logger.exception("training on replies failed folder=%s", folder_id)


reply_trainer = _ReplyTrainer()


_SEEN, _ANSWERED = int(SystemFlag.SEEN), int(SystemFlag.ANSWERED)  # ints: tested per row


def _store_flags(
    cursor, folder, uids, flags, mode, unchangedsince, *, keep_seen: bool = False
) -> StoreResult:
    parsed = Flags.parse(flags)
    bits, keywords = int(parsed.system), list(parsed.keywords)
    lowered_keywords = {k.lower() for k in keywords}
    uid_list = sorted(set(uids))
    result = StoreResult()
    if not uid_list:
        return result
    # Plain statements: STORE is the commonest write, and building its four queries
    # through the ORM cost more than running them.
    quote = connection.ops.quote_name
    messages, folders = quote(Message._meta.db_table), quote(Folder._meta.db_table)
    new_modseq = _locked_highestmodseq(cursor, folder) + 1
    if mode != "remove":
        _check_keywords(keywords)
        _check_folder_keywords(folder.pk, keywords)
    per_message = settings.MAILHOST_IMAP_MAX_KEYWORDS_PER_MESSAGE
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    unseen_delta = 0
    columns_sql = ", ".join(quote(c) for c in FLAG_COLUMNS)
    for chunk_start in range(0, len(uid_list), 5000):
        chunk = uid_list[chunk_start : chunk_start + 5000]
        cursor.execute(
            f"SELECT uid, modseq, keywords, {columns_sql} FROM {messages}"
            f" WHERE folder_id = %s AND uid IN ({', '.join(['%s'] * len(chunk))})",
            [folder.pk, *chunk],
        )
        for uid, modseq, current_keywords, *values in cursor.fetchall():
            state = bits_of(values)
            if unchangedsince is not None and modseq > unchangedsince:
                result.modified.append(uid)
                continue
            if mode == "replace":
                # keep_seen: a reader's FLAGS leaves the owner's \\Seen (its own is private)
                new_state = bits | (state & _SEEN) if keep_seen else bits
                new_keywords = " ".join(keywords)
            elif mode == "add":
                new_state = state | bits
                existing = current_keywords.split()
                have = {k.lower() for k in existing}
                new_keywords = " ".join(existing + [k for k in keywords if k.lower() not in have])
                if len(new_keywords.split()) > max(per_message, len(existing)):
                    raise KeywordLimit(f"At most {per_message} keywords per message")
            else:
                new_state = state & ~bits
                new_keywords = " ".join(
                    k for k in current_keywords.split() if k.lower() not in lowered_keywords
                )
            if new_state == state and new_keywords == current_keywords:
                continue
            groups[(new_state, new_keywords)].append(uid)
            unseen_delta += int(not new_state & _SEEN) - int(not state & _SEEN)
            if new_state & _ANSWERED and not state & _ANSWERED:
                result.answered.append(uid)
            result.changed.append((uid, names_of_bits(new_state, new_keywords), new_modseq))
    result.modified.sort()
    if not result.changed:
        return result
    assignments = ", ".join(f"{quote(c)} = %s" for c in ("modseq", "keywords", *FLAG_COLUMNS))
    for (state, new_keywords), group_uids in groups.items():
        for chunk_start in range(0, len(group_uids), 5000):
            chunk = group_uids[chunk_start : chunk_start + 5000]
            cursor.execute(
                f"UPDATE {messages} SET {assignments}"
                f" WHERE folder_id = %s AND uid IN ({', '.join(['%s'] * len(chunk))})",
                [new_modseq, new_keywords, *column_values(state), folder.pk, *chunk],
            )
    cursor.execute(
        f"UPDATE {folders} SET highestmodseq = %s, unseen_count = unseen_count + %s WHERE id = %s",
        [new_modseq, unseen_delta, folder.pk],
    )
    result.changed.sort()
    events.publish(
        ChangeEvent(
            folder.mailbox_id,
            folder.pk,
            "flags",
            tuple(u for u, _, _ in result.changed),
            new_modseq,
        )
    )
    return result


@unsynced_atomic()  # not mail: synced only when blob files go (blob_release)
def messages_expunge(
    *, folder: Folder, uids: Iterable[int] | None = None, below_uid: int | None = None
) -> list[int]:
    """Remove messages marked \\Deleted (only those in `uids`, or below UID `below_uid`,
    when given). Returns their UIDs."""
    _lock_mailboxes([folder.mailbox_id])
    locked = _lock_folders([folder.pk])[folder.pk]
    table = connection.ops.quote_name(Message._meta.db_table)
    sql = f"SELECT uid, size, seen, blob_id FROM {table} WHERE folder_id = %s AND deleted = %s"
    params: list = [folder.pk, True]
    if below_uid is not None:
        sql += " AND uid < %s"
        params.append(below_uid)
    with connection.cursor() as cursor:
        if uids is None:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        else:
            wanted = sorted(set(uids))
            rows = []
            for start in range(0, len(wanted), 5000):
                chunk = wanted[start : start + 5000]
                cursor.execute(
                    f"{sql} AND uid IN ({', '.join(['%s'] * len(chunk))})", [*params, *chunk]
                )
                rows.extend(cursor.fetchall())
    return _remove_messages(locked, rows)


@transaction.atomic
def messages_delete(*, folder: Folder, uids: Iterable[int]) -> list[int]:
    """Remove these messages whatever their flags, in one transaction (POP3 UPDATE state:
    DELE marks, QUIT removes; the webmail's delete for good). UIDs already gone are skipped.
    Returns the removed UIDs; IMAP sessions see them as EXPUNGE."""
    _lock_mailboxes([folder.mailbox_id])
    locked = _lock_folders([folder.pk])[folder.pk]
    wanted = sorted(set(uids))
    rows: list[tuple[int, int, bool, int]] = []
    for start in range(0, len(wanted), 5000):
        rows.extend(
            Message.objects.filter(
                folder_id=folder.pk, uid__in=wanted[start : start + 5000]
            ).values_list("uid", "size", "seen", "blob_id")
        )
    return _remove_messages(locked, rows)


@transaction.atomic
def folder_empty(*, folder: Folder) -> list[int]:
    """Remove every message of a folder for good (the webmail's Empty Trash / Empty Junk),
    in one transaction. Returns the removed UIDs; IMAP sessions see them as EXPUNGE."""
    _lock_mailboxes([folder.mailbox_id])
    locked = _lock_folders([folder.pk])[folder.pk]
    rows = list(
        Message.objects.filter(folder_id=folder.pk).values_list("uid", "size", "seen", "blob_id")
    )
    return _remove_messages(locked, rows)


# What a reader means, for callers that do not speak IMAP (the webmail, POP3): each is one
# STORE on the flags, with everything messages_store_flags does (MODSEQ, counters, IDLE,
# training on \\Answered).


def messages_mark_read(*, folder: Folder, uids: Iterable[int]) -> StoreResult:
    return _store_system_flag(folder, uids, SystemFlag.SEEN, "add")


def messages_mark_unread(*, folder: Folder, uids: Iterable[int]) -> StoreResult:
    return _store_system_flag(folder, uids, SystemFlag.SEEN, "remove")


def messages_flag(*, folder: Folder, uids: Iterable[int]) -> StoreResult:
    """Flag messages for attention (IMAP \\Flagged; the webmail's star)."""
    return _store_system_flag(folder, uids, SystemFlag.FLAGGED, "add")


def messages_unflag(*, folder: Folder, uids: Iterable[int]) -> StoreResult:
    return _store_system_flag(folder, uids, SystemFlag.FLAGGED, "remove")


def messages_mark_answered(*, folder: Folder, uids: Iterable[int]) -> StoreResult:
    """Mark messages answered (a reply to them was sent): the spam filter learns them as ham."""
    return _store_system_flag(folder, uids, SystemFlag.ANSWERED, "add")


def _store_system_flag(folder: Folder, uids: Iterable[int], flag: SystemFlag, mode: str):
    return messages_store_flags(folder=folder, uids=uids, flags=[flag.imap], mode=mode)


def message_caches_put(*, key: str, values: dict[int, object]) -> None:
    """Store protocol caches derived from a message's immutable bytes: mime_cache[key] = value
    for each message id in `values` (POP3 keeps its CRLF octet count under "pop3")."""
    if not values:
        return
    ids = sorted(values)
    columns = _CACHE_COLUMNS
    field = columns.fields[1]
    table = connection.ops.quote_name(Message._meta.db_table)
    try:
        with unsynced_atomic(), connection.cursor() as cursor:
            for start in range(0, len(ids), 1000):
                chunk = ids[start : start + 1000]
                sql = (
                    f"SELECT {columns.sql} FROM {columns.table} "
                    f"WHERE m.id IN ({', '.join(['%s'] * len(chunk))}) ORDER BY m.id"
                )
                # Rows another transaction holds (a STORE, an expunge) are skipped, not
                # waited for: waiting, in whatever order, could close a deadlock with that
                # writer on PostgreSQL; their cache is written on a later read.
                if connection.features.has_select_for_update:
                    sql += " FOR UPDATE SKIP LOCKED"
                cursor.execute(sql, chunk)
                updates = []
                for row in cursor.fetchall():
                    message_id, cache = columns.values(row)
                    cache = {**(cache or {}), key: values[message_id]}
                    updates.append((field.get_db_prep_save(cache, connection), message_id))
                if updates:
                    cursor.executemany(f"UPDATE {table} SET mime_cache = %s WHERE id = %s", updates)
    except DatabaseError as exc:
        # Only a cache: reading mail must go on when the disk is full (it is rebuilt later).
        logger.warning("could not store %s caches of %d message(s): %s", key, len(ids), exc)


def _remove_messages(
    folder: Folder,
    rows: list[tuple[int, int, bool, int]],
    *,
    count_usage: bool = True,
    release_blobs: bool = True,
) -> list[int]:
    """Delete message rows (uid, size, seen, blob_id) of a folder the caller has locked
    (with its mailbox), inside the caller's transaction, leaving tombstones."""
    if not rows:
        return []
    modseq = folder.highestmodseq + 1
    expunged = sorted(r[0] for r in rows)
    size = sum(r[1] for r in rows)
    unseen = sum(1 for r in rows if not r[2])
    # A plain DELETE: no model refers to a message, so the ORM's delete() (its collector
    # and a transaction of its own) would add only cost.
    table = connection.ops.quote_name(Message._meta.db_table)
    private = connection.ops.quote_name(PrivateSeen._meta.db_table)  # readers' own \\Seen
    with connection.cursor() as cursor:
        for start in range(0, len(expunged), 5000):
            chunk = expunged[start : start + 5000]
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"DELETE FROM {table} WHERE folder_id = %s AND uid IN ({marks})",
                [folder.pk, *chunk],
            )
            cursor.execute(
                f"DELETE FROM {private} WHERE folder_id = %s AND uid IN ({marks})",
                [folder.pk, *chunk],
            )
    Expunged.objects.bulk_create(
        [Expunged(folder_id=folder.pk, uid=uid, modseq=modseq) for uid in expunged],
        batch_size=2000,
    )
    _update_folder_counters(
        folder, uidnext=None, modseq=modseq, count=-len(rows), unseen=-unseen, size=-size
    )
    if count_usage:
        _add_usage(folder.mailbox_id, -size, -len(rows))
    if release_blobs:
        blob_release({r[3] for r in rows})
    events.publish(ChangeEvent(folder.mailbox_id, folder.pk, "expunge", tuple(expunged), modseq))
    return expunged


def _copy_messages(
    source: Folder,
    uids: Iterable[int],
    target: Folder,
    *,
    count_usage: bool,
    shared: bool = False,
    reader: int | None = None,
) -> tuple[list[tuple[int, int]], list[Message], dict[int, Folder]]:
    """Copy messages (sharing their blobs) inside the caller's transaction.

    Returns the (source uid, new uid) pairs, the source messages and the locked folders.
    Between two mailboxes (a folder shared with the other, RFC 4314) the copies count to the
    target's usage, a move's too; only when the caller says so (`shared`: it checked the
    rights), else NotFound. Copied by a reader of the source (another's shared folder), the
    copies take the reader's own \\Seen.
    """
    cross = source.mailbox_id != target.mailbox_id
    if cross and not shared:
        raise NotFound("target folder belongs to another mailbox")
    count_usage = count_usage or cross
    uid_list = sorted(set(uids))
    if not uid_list:
        return [], [], {}
    mailboxes = _lock_mailboxes([source.mailbox_id, target.mailbox_id])
    if source.mailbox_id not in mailboxes or target.mailbox_id not in mailboxes:
        raise NotFound("mailbox does not exist")
    mailbox = mailboxes[target.mailbox_id]
    locked = _lock_folders({source.pk, target.pk})
    originals: list[Message] = []
    for start in range(0, len(uid_list), 5000):
        originals.extend(
            Message.objects.filter(folder_id=source.pk, uid__in=uid_list[start : start + 5000])
        )
    originals.sort(key=lambda m: m.uid)
    if not originals:
        return [], [], locked
    size = sum(m.size for m in originals)
    if count_usage and _over_quota(mailbox, size, len(originals)):
        raise QuotaExceeded(f"mailbox {mailbox.pk} is over quota")
    seen = {m.uid: m.seen for m in originals}
    if reader is not None and reader != source.mailbox_id:
        private = private_seen_map(source.pk, reader, list(seen))
        seen = {uid: private.get(uid, (False, 0))[0] for uid in seen}
    unseen = sum(1 for value in seen.values() if not value)
    first_uid, modseq = _reserve(locked[target.pk], len(originals), size, unseen)
    pairs = []
    copies = []
    saved_at = timezone.now()
    for offset, original in enumerate(originals):
        new_uid = first_uid + offset
        pairs.append((original.uid, new_uid))
        copy = Message(
            **{
                f.attname: getattr(original, f.attname)
                for f in Message._meta.concrete_fields
                if not f.primary_key
            }
        )
        copy.folder_id = target.pk
        copy.uid = new_uid
        copy.seen = seen[original.uid]
        copy.modseq = modseq
        copy.saved_at = saved_at  # RFC 8514 3: the copy's own save date
        # The highest UID of the target so far: its conversation's newest there (the
        # database's trigger clears the one before it; migration 0033)
        copy.conversation_head = True
        copies.append(copy)
    Message.objects.bulk_create(copies, batch_size=1000)
    # The locked rows, not the callers' Folder objects (IMAP passes a stub of the source).
    trained = copies if all(c.pk for c in copies) else originals
    if not cross:
        _train_on_junk_moves(locked[source.pk], locked[target.pk], trained)
    if count_usage:
        _add_usage(mailbox.pk, size, len(originals))
    events.publish(ChangeEvent(mailbox.pk, target.pk, "exists", tuple(n for _, n in pairs), modseq))
    return pairs, originals, locked


def _train_on_junk_moves(source: Folder, target: Folder, messages: list[Message]) -> None:
    """Into Junk: the user says spam; out of Junk (not to Trash: deleting junk says nothing
    more): ham. IMAP MOVE, COPY (then EXPUNGE) and the webmail all come through here.
    `messages` are the copies (or, where the database gives no ids back, the originals)."""
    junk, trash = SpecialUse.JUNK.value, SpecialUse.TRASH.value
    ids = [m.pk for m in messages]
    if target.special_use == junk and source.special_use != junk:
        spam_train(mailbox=source.mailbox, message_ids=ids, spam=True)
    elif source.special_use == junk and target.special_use not in {junk, trash}:
        spam_train(mailbox=source.mailbox, message_ids=ids, spam=False)


def spam_train(*, mailbox: Mailbox | int, message_ids: Iterable[int], spam: bool) -> list[int]:
    """Train the mailbox's spam filter on these messages as spam (or ham), and trust their
    senders when ham; part of the caller's transaction. The training itself (the builtin
    classifier's counts, or rspamd's /learnspam and /learnham) runs once it commits, and
    housekeeping finishes what a crash leaves pending. Returns the training row ids."""
    mailbox_id = mailbox if isinstance(mailbox, int) else mailbox.pk
    rows = Message.objects.filter(pk__in=list(message_ids), folder__mailbox_id=mailbox_id)
    found = list(rows.values_list("blob_id", "from_address"))
    if not found:
        return []
    return outbound().training_request(mailbox_id=mailbox_id, messages=found, spam=spam)


@transaction.atomic
def messages_copy(
    *,
    source: Folder,
    uids: Iterable[int],
    target: Folder,
    shared: bool = False,
    reader: int | None = None,
) -> list[tuple[int, int]]:
    """Copy messages (sharing their blobs) to another folder of the same mailbox (or, with
    `shared`, of another whose folder is shared: the caller checked the ACL, RFC 4314).

    Returns (source uid, new uid) pairs in ascending source order (UIDPLUS COPYUID). Raises
    QuotaExceeded when the copies do not fit.
    """
    pairs, _, _ = _copy_messages(
        source, uids, target, count_usage=True, shared=shared, reader=reader
    )
    return pairs


@transaction.atomic
def messages_move(
    *,
    source: Folder,
    uids: Iterable[int],
    target: Folder,
    shared: bool = False,
    reader: int | None = None,
) -> list[tuple[int, int]]:
    """Move messages: copy, then expunge from the source, in one transaction (RFC 6851).

    A move does not change the mailbox's usage, so it is never refused for quota (moving mail
    to Trash must work in a full mailbox).
    """
    pairs, originals, locked = _copy_messages(
        source, uids, target, count_usage=False, shared=shared, reader=reader
    )
    if pairs:
        rows = [(m.uid, m.size, m.seen, m.blob_id) for m in originals]
        cross = source.mailbox_id != target.mailbox_id  # the octets leave the source's usage
        _remove_messages(locked[source.pk], rows, count_usage=cross, release_blobs=False)
    return pairs


# last_login_at is kept to the minute: a client that logs in for every check (imaptest does,
# many phones do) costs one write a minute, not one a login.
LOGIN_RECORD_INTERVAL = timedelta(minutes=1)


def mailbox_login_record_due(mailbox: Mailbox) -> bool:
    """Whether mailbox_record_login would write (callers on an event loop skip the thread
    hop when it would not)."""
    last = mailbox.last_login_at
    return last is None or not timedelta(0) <= timezone.now() - last < LOGIN_RECORD_INTERVAL


def mailbox_record_login(*, mailbox: Mailbox) -> None:
    """Bookkeeping only: a full disk or a lost database write must not refuse the login."""
    if not mailbox_login_record_due(mailbox):
        return
    now = timezone.now()
    try:
        with unsynced_atomic():
            Mailbox.objects.filter(pk=mailbox.pk).update(last_login_at=now)
        mailbox.last_login_at = now
    except DatabaseError as exc:
        logger.warning("could not record the login of mailbox %s: %s", mailbox.pk, exc)


# --- Archives (importmailbox) --------------------------------------------------------------


@dataclass
class ImportResult:
    folders_created: int = 0
    imported: int = 0
    skipped: int = 0


def mailbox_import(*, mailbox: Mailbox, path: str) -> ImportResult:
    """Bring an mbox file, a directory of mbox files or a Maildir++ tree into the mailbox
    (mailboxes/archive.py reads them) through mailbox_import_folders."""
    from mailboxes import archive

    return mailbox_import_folders(mailbox=mailbox, folders=archive.read_archive(path))


def mailbox_import_folders(*, mailbox: Mailbox, folders: Iterable) -> ImportResult:
    """Store archived folders (mailboxes.archive.ArchivedFolder: an archive's, or another IMAP
    server's through mailboxes/imapimport.py): a folder with a special use goes into ours of
    that use where there is one, else missing folders are made with folder_create; each
    message stored with message_append (durable as an IMAP APPEND is) with its flags, keywords
    and internal date. A message whose Message-ID, internal date (to the second) and size are
    already in the folder is skipped (its bytes not even read), so a second import adds
    nothing and an interrupted one resumes."""
    from mailboxes import selectors

    result = ImportResult()
    for archived in folders:
        folder = None
        if archived.special_use:
            folder = selectors.folder_by_special_use(mailbox, archived.special_use)
        if folder is None:
            name = folder_name_validate(archived.name)
            folder = selectors.folder_get(mailbox, name)
        if folder is None:
            folder = folder_create(mailbox=mailbox, name=name, special_use=archived.special_use)
            result.folders_created += 1
        seen = selectors.folder_message_fingerprints(folder)
        for message in archived.messages:
            internal_date = message.internal_date or timezone.now()
            key = message.fingerprint(internal_date)
            if key in seen:
                result.skipped += 1
                continue
            message_append(
                folder=folder, raw=message.raw, flags=message.flags, internal_date=internal_date
            )
            seen.add(key)
            result.imported += 1
    return result


# --- Sieve scripts (RFC 5228) and their storage (RFC 5804) ------------------------------
#
# Scripts are validated here, when they are stored; delivery runs what was accepted and never
# parses for errors. The active script and the domain's default are read through
# selectors.sievescript_active / domain_sieve_default.

SIEVE_NAME_MAX = 128  # RFC 5804 1.6: servers take at least 128 characters; we take that many
# RFC 5804 1.6: no control characters (C0, DEL, C1), no LINE/PARAGRAPH SEPARATOR.
_SIEVE_NAME_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def sievescript_name_validate(name: str) -> str:
    """The name as stored, or InvalidValue (RFC 5804 1.6: NFC UTF-8, no control characters)."""
    import unicodedata

    if not name:
        raise InvalidValue("script name is empty")
    if len(name) > SIEVE_NAME_MAX:
        raise InvalidValue(f"script name is longer than {SIEVE_NAME_MAX} characters")
    if _SIEVE_NAME_FORBIDDEN.search(name):
        raise InvalidValue("script name has a control character")
    if not unicodedata.is_normalized("NFC", name):
        raise InvalidValue("script name is not in Unicode NFC")
    return name


def sievescript_check(
    *, text: str, mailbox: Mailbox | None = None, name: str | None = None
) -> list:
    """The errors of a script (mailboxes.sieve's SieveError: line, column, message); empty
    when it compiles. Never raises for a bad script. With `mailbox`, its includes (RFC 6609)
    are loaded from that mailbox's scripts and checked too (missing, broken, looping), as
    Pigeonhole does at upload; `name` is the script being stored, which includes see as
    `text` already."""
    from mailboxes import sieve

    if mailbox is None:
        return list(sieve.check(text))

    def include(script_name: str, location: str = "personal") -> str | None:
        if location != "personal":
            return None  # no :global scripts are kept here
        if script_name == name:
            return text
        return (
            SieveScript.objects.filter(mailbox_id=mailbox.pk, name=script_name)
            .values_list("text", flat=True)
            .first()
        )

    return list(sieve.check(text, include=include))


def _sieve_validate(text: str, *, mailbox: Mailbox | None = None, name: str | None = None) -> None:
    errors = sievescript_check(text=text, mailbox=mailbox, name=name)
    if errors:
        raise SieveScriptInvalid(errors)


def sievescript_check_space(*, mailbox: Mailbox, name: str, size: int) -> None:
    """SieveQuotaExceeded when a script of `size` octets under `name` would not fit
    (RFC 5804 2.5 HAVESPACE; PUTSCRIPT applies the same rule)."""
    if size > settings.MAILHOST_SIEVE_MAX_SCRIPT_SIZE:
        raise SieveQuotaExceeded(
            "MAXSIZE",
            f"script is larger than {settings.MAILHOST_SIEVE_MAX_SCRIPT_SIZE} octets",
        )
    scripts = SieveScript.objects.filter(mailbox_id=mailbox.pk)
    if (
        scripts.count() >= settings.MAILHOST_SIEVE_MAX_SCRIPTS
        and not scripts.filter(name=name).exists()
    ):
        raise SieveQuotaExceeded(
            "MAXSCRIPTS", f"at most {settings.MAILHOST_SIEVE_MAX_SCRIPTS} scripts per mailbox"
        )


@transaction.atomic
def sievescript_put(
    *, mailbox: Mailbox, name: str, text: str, activate: bool = False
) -> SieveScript:
    """Store a script under `name`, replacing one of that name (RFC 5804 2.6: an active
    script stays active). SieveScriptInvalid when it does not compile, SieveQuotaExceeded
    past MAILHOST_SIEVE_MAX_SCRIPTS / _MAX_SCRIPT_SIZE. `activate` makes it the active one."""
    name = sievescript_name_validate(name)
    _lock_sieve_owner(mailbox)
    sievescript_check_space(mailbox=mailbox, name=name, size=len(text.encode("utf-8")))
    _sieve_validate(text, mailbox=mailbox, name=name)
    script, created = SieveScript.objects.get_or_create(
        mailbox_id=mailbox.pk, name=name, defaults={"text": text}
    )
    if not created:
        script.text = text
        script.save(update_fields=["text", "updated_at"])
    if activate and not script.active:
        SieveScript.objects.filter(mailbox_id=mailbox.pk, active=True).update(active=False)
        SieveScript.objects.filter(pk=script.pk).update(active=True)
        script.active = True
    logger.info(
        "sievescript put mailbox=%s name=%r size=%d created=%s active=%s",
        mailbox.pk,
        name,
        script.size,
        created,
        script.active,
    )
    return script


@transaction.atomic
def sievescript_activate(*, mailbox: Mailbox, name: str | None) -> SieveScript | None:
    """Make `name` the mailbox's one active script; "" or None: none is active (RFC 5804
    2.8). NotFound when no script has that name."""
    _lock_sieve_owner(mailbox)
    script = None
    if name:
        script = SieveScript.objects.filter(mailbox_id=mailbox.pk, name=name).first()
        if script is None:
            raise NotFound(f"no script named {name!r}")
    SieveScript.objects.filter(mailbox_id=mailbox.pk, active=True).exclude(
        pk=script.pk if script else None
    ).update(active=False)
    if script is not None and not script.active:
        SieveScript.objects.filter(pk=script.pk).update(active=True)
        script.active = True
    logger.info("sievescript activate mailbox=%s name=%r", mailbox.pk, name or "")
    return script


@transaction.atomic
def sievescript_delete(*, mailbox: Mailbox, name: str) -> None:
    """NotFound, or SieveScriptActive for the active script (RFC 5804 2.10)."""
    _lock_sieve_owner(mailbox)
    script = SieveScript.objects.filter(mailbox_id=mailbox.pk, name=name).first()
    if script is None:
        raise NotFound(f"no script named {name!r}")
    if script.active:
        raise SieveScriptActive(f"script {name!r} is active")
    script.delete()
    logger.info("sievescript delete mailbox=%s name=%r", mailbox.pk, name)


@transaction.atomic
def sievescript_rename(*, mailbox: Mailbox, old_name: str, new_name: str) -> SieveScript:
    """NotFound, AlreadyExists, InvalidValue for a bad new name. An active script stays
    active under its new name (RFC 5804 2.11.1)."""
    new_name = sievescript_name_validate(new_name)
    _lock_sieve_owner(mailbox)
    script = SieveScript.objects.filter(mailbox_id=mailbox.pk, name=old_name).first()
    if script is None:
        raise NotFound(f"no script named {old_name!r}")
    if new_name == old_name:
        return script
    if SieveScript.objects.filter(mailbox_id=mailbox.pk, name=new_name).exists():
        raise AlreadyExists(f"a script named {new_name!r} exists")
    script.name = new_name
    script.save(update_fields=["name", "updated_at"])
    logger.info("sievescript rename mailbox=%s old=%r new=%r", mailbox.pk, old_name, new_name)
    return script


def _lock_sieve_owner(mailbox: Mailbox) -> None:
    # Serializes a mailbox's script changes, so the count check and the one-active rule hold
    # under concurrent sessions (the constraints back them up).
    Mailbox.objects.select_for_update().filter(pk=mailbox.pk).first()


@transaction.atomic
def domain_set_sieve_default(*, domain: Domain, text: str) -> Domain:
    """The script run before every mailbox's own (Pigeonhole's sieve_before); blank: none.
    SieveScriptInvalid when it does not compile."""
    if text.strip():
        if len(text.encode("utf-8")) > settings.MAILHOST_SIEVE_MAX_SCRIPT_SIZE:
            raise SieveQuotaExceeded("MAXSIZE", "script is too large")
        _sieve_validate(text)
    else:
        text = ""
    Domain.objects.filter(pk=domain.pk).update(sieve_default=text)
    domain.sieve_default = text
    logger.info("sievescript domain_default domain=%s size=%d", domain.name, len(text))
    return domain


# --- access control lists (RFC 4314) ----------------------------------------------------


def acl_rights_parse(text: str) -> tuple[str, str]:
    """(mode, rights) of a SETACL rights argument: mode "+", "-" or "" (replace); the
    obsolete "c" and "d" become what they stand for (RFC 4314 2.1.1). InvalidValue for a
    right we do not know (RFC 4314 3.1: BAD)."""
    mode = text[:1] if text[:1] in ("+", "-") else ""
    held: set[str] = set()
    for c in text[len(mode) :]:
        if c in ACL_OBSOLETE_RIGHTS:
            held.update(ACL_OBSOLETE_RIGHTS[c])
        elif c in ACL_RIGHTS:
            held.add(c)
        else:
            raise InvalidValue(f"Unknown right {c!r}")
    return mode, "".join(c for c in ACL_RIGHTS if c in held)


def _acl_grantee(folder: Folder, identifier: str) -> Mailbox | None:
    """The mailbox an identifier names (None for "anyone"); NotFound when none does, and
    FolderError for the owner, whose rights are all of them and fixed."""
    if identifier.lower() == "anyone":
        return None
    from mailboxes import selectors

    grantee = selectors.mailbox_get(identifier)
    if grantee is None:
        raise NotFound(identifier)
    if grantee.id == folder.mailbox_id:
        raise FolderError("The owner's rights cannot change")
    return grantee


@transaction.atomic
def folder_acl_set(*, folder: Folder, identifier: str, rights: str, mode: str = "") -> str:
    """Give, add ("+") or take ("-") rights on a folder to a mailbox's address or "anyone"
    (every mailbox of the owner's domain); returns the rights held now ("" removes the entry).
    RFC 4314 3.1."""
    grantee = _acl_grantee(folder, identifier)
    entry = FolderAcl.objects.select_for_update().filter(folder=folder, grantee=grantee).first()
    current = set(entry.rights) if entry is not None else set()
    if mode == "+":
        current |= set(rights)
    elif mode == "-":
        current -= set(rights)
    else:
        current = set(rights)
    new = "".join(c for c in ACL_RIGHTS if c in current)
    if not new:
        if entry is not None:
            entry.delete()
    elif entry is None:
        FolderAcl.objects.create(folder=folder, grantee=grantee, rights=new)
    elif entry.rights != new:
        entry.rights = new
        entry.save(update_fields=["rights"])
    logger.info(
        "folder_acl_set folder=%s identifier=%s rights=%s", folder.id, identifier, new or "-"
    )
    return new


@transaction.atomic
def folder_acl_delete(*, folder: Folder, identifier: str) -> None:
    """Remove an identifier's entry from the folder's ACL (RFC 4314 3.2)."""
    grantee = _acl_grantee(folder, identifier)
    FolderAcl.objects.filter(folder=folder, grantee=grantee).delete()
    logger.info("folder_acl_delete folder=%s identifier=%s", folder.id, identifier)


def folder_acl_inherit(*, folder: Folder, parent: Folder) -> None:
    """A folder created under a shared one takes the parent's ACL (as Dovecot does)."""
    FolderAcl.objects.bulk_create(
        [
            FolderAcl(folder=folder, grantee_id=entry.grantee_id, rights=entry.rights)
            for entry in FolderAcl.objects.filter(folder=parent)
        ],
        ignore_conflicts=True,
    )


# --- metadata (RFC 5464) ----------------------------------------------------------------

# RFC 5464 4.3: the largest value and the most entries one mailbox may keep (entries on the
# server and on its folders together); beyond them SETMETADATA gets [METADATA MAXSIZE n] or
# [METADATA TOOMANY].
METADATA_MAX_VALUE_SIZE = 64 * 1024
METADATA_MAX_ENTRIES = 1000


class MetadataTooLarge(InvalidValue):
    pass


class MetadataTooMany(InvalidValue):
    pass


@transaction.atomic
def metadata_set(
    *, mailbox: Mailbox, folder: Folder | None, entries: Sequence[tuple[str, bytes | None]]
) -> None:
    """Set (or with None remove) entries, all or none (RFC 5464 4.3). /private/ ones are the
    mailbox's own, /shared/ ones on a folder its owner's; the server's /shared/ entries are
    the administrator's (NoPermission), and so are the ones the server keeps itself."""
    from mailboxes import selectors

    Mailbox.objects.select_for_update().filter(pk=mailbox.pk).first()
    for name, value in entries:
        if value is not None and len(value) > METADATA_MAX_VALUE_SIZE:
            raise MetadataTooLarge(name)
        if name in selectors._metadata_builtin(folder):
            raise NoPermission(name)
        if name.startswith("/private/"):
            owner_id = mailbox.pk
        elif folder is None:
            raise NoPermission(name)
        else:
            owner_id = folder.mailbox_id
        rows = MetadataEntry.objects.filter(mailbox_id=owner_id, folder=folder, name=name)
        if value is None:
            rows.delete()
        elif not rows.update(value=value):
            if selectors.metadata_count(owner_id) >= METADATA_MAX_ENTRIES:
                raise MetadataTooMany(name)
            MetadataEntry.objects.create(mailbox_id=owner_id, folder=folder, name=name, value=value)
    # NOTIFY's MailboxMetadataChange / ServerMetadataChange (RFC 5465 5.7, 5.8)
    events.publish(ChangeEvent(mailbox.pk, folder.pk if folder is not None else 0, "metadata"))
    logger.info(
        "metadata_set mailbox=%s folder=%s entries=%d",
        mailbox.pk,
        folder.pk if folder is not None else "-",
        len(entries),
    )


def identity_save(
    *, mailbox: Mailbox, address: str, name: str, signature: str, is_default: bool
) -> None:
    """Save how the mailbox writes as `address` (one it owns, selectors.identities_of)."""
    from mailboxes import selectors
    from mailboxes.models import Identity

    owned = {r["address"].lower(): r["address"] for r in selectors.identities_of(mailbox)}
    if address.lower() not in owned:
        raise InvalidAddress(f"{address} is not one of this mailbox's addresses")
    address = owned[address.lower()]
    with transaction.atomic():
        if is_default:
            Identity.objects.filter(mailbox=mailbox).update(is_default=False)
        Identity.objects.update_or_create(
            mailbox=mailbox,
            address=address,
            defaults={
                "name": name.strip()[:200],
                "signature": signature.replace("\r\n", "\n")[:10000],
                "is_default": is_default,
            },
        )


def _contact_modseq(mailbox: Mailbox) -> int:
    """A change number above every earlier one of the mailbox's book."""
    from django.db.models import Max

    from mailboxes.models import Contact, ContactDeleted

    last = max(
        Contact.objects.filter(mailbox=mailbox).aggregate(m=Max("modseq"))["m"] or 0,
        ContactDeleted.objects.filter(mailbox=mailbox).aggregate(m=Max("modseq"))["m"] or 0,
    )
    return max(time.time_ns(), last + 1)


def contacts_put(*, mailbox: Mailbox, cards: list) -> int:
    """Store vCards (mailboxes.vcard.Card) in the mailbox's address book, replacing the
    card with the same UID; returns how many were stored."""
    from mailboxes.models import Contact, ContactDeleted

    with transaction.atomic():
        Mailbox.objects.select_for_update().filter(pk=mailbox.pk).first()  # one writer
        for card in cards:
            modseq = _contact_modseq(mailbox)
            Contact.objects.update_or_create(
                mailbox=mailbox,
                uid=card.uid,
                defaults={
                    "name": card.name,
                    "emails": "\n".join(card.emails),
                    "vcard": card.text,
                    "modseq": modseq,
                },
            )
            ContactDeleted.objects.filter(mailbox=mailbox, uid=card.uid).delete()
    return len(cards)


def contact_delete(*, mailbox: Mailbox, contact_id: int) -> bool:
    from mailboxes.models import Contact, ContactDeleted

    with transaction.atomic():
        Mailbox.objects.select_for_update().filter(pk=mailbox.pk).first()
        contact = Contact.objects.filter(mailbox=mailbox, pk=contact_id).first()
        if contact is None:
            return False
        ContactDeleted.objects.create(
            mailbox=mailbox, uid=contact.uid, modseq=_contact_modseq(mailbox)
        )
        contact.delete()
    return True
