"""Mailhost settings. Everything comes from the environment (README lists the variables)."""

from __future__ import annotations

import os

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from mailhost.config import (
    data_dir,
    default_hostname,
    env_bool,
    env_choice,
    env_dir,
    env_domain_names,
    env_duration,
    env_durations,
    env_file,
    env_float,
    env_fraction,
    env_host_names,
    env_host_port,
    env_host_ports,
    env_hostname,
    env_int,
    env_ip_address,
    env_ip_addresses,
    env_log_level,
    env_networks,
    env_port,
    env_s3_bucket,
    env_s3_region,
    env_scored_zones,
    env_str,
    env_url,
)
from mailhost.proxy import trusted_origins

BASE_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent
DATA_DIR = data_dir()

# --- Django core -------------------------------------------------------------------------

DEBUG = env_bool("MAILHOST_DEBUG", False)
SECRET_KEY = env_str("MAILHOST_SECRET_KEY") or env_str("DJANGO_SECRET_KEY")
if SECRET_KEY and len(SECRET_KEY) < 32:  # never echo the key itself
    raise ImproperlyConfigured(
        f"MAILHOST_SECRET_KEY is too short ({len(SECRET_KEY)} characters; give at least 32"
        " random ones, or unset it to have one generated into the data dir)"
    )
if not SECRET_KEY:
    # A key generated once into the data dir keeps sessions valid across restarts.
    from mailhost.secrets import persistent_secret_key

    SECRET_KEY = persistent_secret_key(DATA_DIR)

ALLOWED_HOSTS = env_host_names("MAILHOST_ALLOWED_HOSTS", "*")
# Reverse proxies whose X-Forwarded-For/-Proto/-Host are believed (mailhost/proxy.py); an
# HTTPS proxy's sign-in POSTs then pass the CSRF origin check, also from the allowed hosts.
MAILHOST_TRUSTED_PROXIES = env_networks("MAILHOST_TRUSTED_PROXIES")
CSRF_TRUSTED_ORIGINS = trusted_origins(ALLOWED_HOSTS)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "mailboxes",
    "delivery",
    "protocols",
    "protocols.pop3",
    "webmail",
]

MIDDLEWARE = [
    "mailhost.proxy.ForwardedMiddleware",
    "mailhost.middleware.HttpsResponseMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "webmail.timezones.ReaderTimezoneMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mailhost.urls"
WSGI_APPLICATION = "mailhost.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ----------------------------------------------------------------------------

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        _db = dj_database_url.parse(DATABASE_URL, conn_max_age=600)
    except Exception as exc:  # dj_database_url raises plain exceptions for unknown schemes
        raise ImproperlyConfigured(f"DATABASE_URL={DATABASE_URL!r}: {exc}") from None
else:
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": str(DATA_DIR / "mailhost.sqlite3")}

# SQLite reads through a memory map of the file (this many bytes of it) rather than a copy of
# each page into its cache: checking 45k texts of a full-text search at 100k messages took
# 158 ms of CPU through read() and 86 ms through the map. Only reads use the map (SQLite writes
# with write()); its pages are the kernel's page cache, shared by every connection and process.
# SQLite caps it at its build's SQLITE_MAX_MMAP_SIZE (2 GiB in Debian's and Python's builds).
MAILHOST_SQLITE_MMAP_SIZE = env_int("MAILHOST_SQLITE_MMAP_SIZE", 2**31, minimum=0)
# A server process copies the WAL into the database file in a thread of its own, this long
# after the first commit since its last copy, not inside the COMMIT that filled the WAL
# (mailhost/sqlite3/base.py); 0: inside that COMMIT, as SQLite does by itself.
MAILHOST_SQLITE_CHECKPOINT_INTERVAL = env_duration(
    "MAILHOST_SQLITE_CHECKPOINT_INTERVAL", 0.1, minimum=0
)
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside one writer and several processes share the file; IMMEDIATE
    # takes the write lock at BEGIN, so concurrent writers queue on the busy timeout instead of
    # failing on a lock upgrade half-way through a transaction. synchronous=FULL syncs the WAL
    # at every commit: an SMTP 250 or IMAP OK must survive a power loss, not only a crash of
    # this process (NORMAL would lose the last commits while their blobs survive). Inside a
    # transaction mailhost.sqlite3 runs at NORMAL and syncs the WAL itself once the writer
    # lock is free, before the commit returns.
    # mailhost.sqlite3 is Django's backend with this process's writers queued on a lock of
    # their own (see there) rather than in SQLite's sleeping busy handler.
    # temp_store=MEMORY keeps a statement's rollback journal (and temporary tables, transient
    # indexes) in memory: a statement inside a transaction that changes more than 64 KiB of
    # pages (port 25's message INSERT with its indexes and triggers, one message in five)
    # otherwise spills its journal to a new temporary file, opened, unlinked, written and
    # closed inside the writer's transaction: 2.6 system calls a message. Nothing durable
    # lives there; it only undoes a failed statement.
    _db["ENGINE"] = "mailhost.sqlite3"
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": (
                "PRAGMA journal_mode=WAL;PRAGMA synchronous=FULL;PRAGMA busy_timeout=30000;"
                "PRAGMA temp_store=MEMORY;"
                f"PRAGMA mmap_size={MAILHOST_SQLITE_MMAP_SIZE};"
            ),
        }
    )
    _db["TEST"] = {"NAME": str(DATA_DIR / "test-mailhost.sqlite3")}
    # Keep each thread's connection (CONN_MAX_AGE None) rather than reopen it on every
    # close_old_connections(): the SMTP hooks call that before each RCPT and DATA, and an
    # open plus the three PRAGMAs cost about 3 ms a time. An idle SQLite connection holds no
    # lock and no snapshot; a broken one is still dropped (errors_occurred / is_usable).
    _db.setdefault("CONN_MAX_AGE", None)
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend with a cursor wrapper that names its attributes (mailhost/dbcursor.py).
    _db["ENGINE"] = "mailhost.postgresql"
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis and the queue -----------------------------------------------------------------

REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
if REDIS_URL:
    # django-rq (its rqworker command, the admin's dashboard) only for our own Redis: its
    # package imports RQ, the Redis client and their dependencies, which a process without
    # REDIS_URL never uses (issue 22: about 10 MiB of a runmail tree); before the apps whose
    # commands it must win over (delivery's rqworker says why it cannot run without Redis).
    INSTALLED_APPS.insert(INSTALLED_APPS.index("mailboxes"), "django_rq")
RQ_QUEUES = {
    "default": {"URL": REDIS_URL or "redis://127.0.0.1:6379/0", "DEFAULT_TIMEOUT": 600},
}
# `manage.py rqworker` runs delivery's worker class: jobs in-process, plus the spool sweeper.
RQ = {"WORKER_CLASS": "delivery.rqworker.MailhostWorker"}
# django-rq's admin dashboard only for our own Redis (mailhost/urls.py: /admin/rq/ shows the
# embedded queue without it).
RQ_SHOW_ADMIN_LINK = bool(REDIS_URL)

# --- Mail server ---------------------------------------------------------------------------

# The machine's FQDN when unset; listeners and workers refuse a default that is not a FQDN
# (config.require_server_name): it would be the EHLO name, the Received host, MAILER-DAEMON@.
_hostname_set = env_hostname("MAILHOST_HOSTNAME")
MAILHOST_HOSTNAME_FROM_ENV = _hostname_set is not None
MAILHOST_HOSTNAME = _hostname_set or default_hostname()
MAILHOST_BIND = env_ip_address("MAILHOST_BIND", "0.0.0.0")
MAILHOST_SMTP_PORT = env_port("MAILHOST_SMTP_PORT", 25)
MAILHOST_SUBMISSION_PORT = env_port("MAILHOST_SUBMISSION_PORT", 587)
MAILHOST_SUBMISSIONS_PORT = env_port("MAILHOST_SUBMISSIONS_PORT", 465)
MAILHOST_IMAP_PORT = env_port("MAILHOST_IMAP_PORT", 143)
MAILHOST_IMAPS_PORT = env_port("MAILHOST_IMAPS_PORT", 993)
MAILHOST_POP3_PORT = env_port("MAILHOST_POP3_PORT", 110)
MAILHOST_POP3S_PORT = env_port("MAILHOST_POP3S_PORT", 995)
MAILHOST_MANAGESIEVE_PORT = env_port("MAILHOST_MANAGESIEVE_PORT", 4190)
MAILHOST_WEB_PORT = env_port("MAILHOST_WEB_PORT", 8000)
# The web app over HTTPS under runmail (mailhost/web.py); unset: no HTTPS listener.
MAILHOST_WEBS_PORT = env_port("MAILHOST_WEBS_PORT", 0) if env_str("MAILHOST_WEBS_PORT") else None
# The web port under runmail (mailhost/web.py): connections per client address (trusted
# proxies exempt) and in all, seconds for a request head to arrive in full (and for an idle
# or stalled connection to be closed), threads running requests.
MAILHOST_WEB_MAX_CONNECTIONS_PER_IP = env_int("MAILHOST_WEB_MAX_CONNECTIONS_PER_IP", 50, minimum=1)
MAILHOST_WEB_MAX_CONNECTIONS = env_int("MAILHOST_WEB_MAX_CONNECTIONS", 1000, minimum=1)
MAILHOST_WEB_REQUEST_TIMEOUT = env_int("MAILHOST_WEB_REQUEST_TIMEOUT", 30, minimum=1)
MAILHOST_WEB_THREADS = env_int("MAILHOST_WEB_THREADS", 8, minimum=1)
if bool(env_str("MAILHOST_TLS_CERT")) != bool(env_str("MAILHOST_TLS_KEY")):
    raise ImproperlyConfigured("MAILHOST_TLS_CERT and MAILHOST_TLS_KEY must be set together")
MAILHOST_TLS_CERT = env_file("MAILHOST_TLS_CERT")
MAILHOST_TLS_KEY = env_file("MAILHOST_TLS_KEY")
# More certificates, each a PEM file (chain and key) presented to clients asking for one of
# its names (SNI); the one above serves every other name (mailhost/tls.py).
MAILHOST_TLS_CERTS_DIR = env_dir("MAILHOST_TLS_CERTS_DIR")
MAILHOST_DNS_SERVERS = env_host_ports("MAILHOST_DNS_SERVERS")


def _is_address(text: str) -> bool:
    local, at, domain = text.partition("@")
    return bool(local and at and "." in domain and "@" not in domain and text.split() == [text])


# ACME (RFC 8555, mailhost/acme.py): a certificate for MAILHOST_HOSTNAME from this directory,
# renewed MAILHOST_ACME_RENEW_DAYS before expiry, checked every MAILHOST_ACME_CHECK_INTERVAL.
MAILHOST_ACME_DIRECTORY = env_url("MAILHOST_ACME_DIRECTORY", ("https",))
MAILHOST_ACME_EMAIL = env_str("MAILHOST_ACME_EMAIL")
if MAILHOST_ACME_EMAIL is not None and not _is_address(MAILHOST_ACME_EMAIL):
    raise ImproperlyConfigured(f"MAILHOST_ACME_EMAIL={MAILHOST_ACME_EMAIL!r} is not an address")
MAILHOST_ACME_CA_FILE = env_file("MAILHOST_ACME_CA_FILE")
MAILHOST_ACME_DOMAIN_NAMES = env_bool("MAILHOST_ACME_DOMAIN_NAMES", True)
MAILHOST_ACME_RENEW_DAYS = env_int("MAILHOST_ACME_RENEW_DAYS", 30, minimum=1, maximum=89)
MAILHOST_ACME_CHALLENGE = env_choice(
    "MAILHOST_ACME_CHALLENGE", "http-01", ("http-01", "tls-alpn-01")
)
MAILHOST_ACME_CHECK_INTERVAL = env_duration("MAILHOST_ACME_CHECK_INTERVAL", 86400, minimum=1)
if MAILHOST_ACME_DIRECTORY and MAILHOST_TLS_CERT:
    raise ImproperlyConfigured(
        "MAILHOST_ACME_DIRECTORY and MAILHOST_TLS_CERT: set one of them (ACME writes its own)"
    )
MAILHOST_OUTBOUND_PORT = env_port("MAILHOST_OUTBOUND_PORT", 25)
MAILHOST_RELAYHOST = env_host_port("MAILHOST_RELAYHOST", 25)
MAILHOST_RELAYHOST_USER = env_str("MAILHOST_RELAYHOST_USER")
MAILHOST_RELAYHOST_PASSWORD = env_str("MAILHOST_RELAYHOST_PASSWORD")
if bool(MAILHOST_RELAYHOST_USER) != bool(MAILHOST_RELAYHOST_PASSWORD):
    raise ImproperlyConfigured(
        "MAILHOST_RELAYHOST_USER and MAILHOST_RELAYHOST_PASSWORD must be set together"
    )

# Limits. Each is a named setting; the environment may override the defaults.
MAILHOST_MAX_MESSAGE_SIZE = env_int("MAILHOST_MAX_MESSAGE_SIZE", 50 * 1024 * 1024, minimum=1024)
MAILHOST_MAX_RECIPIENTS = env_int("MAILHOST_MAX_RECIPIENTS", 100, minimum=1)
MAILHOST_MAX_LINE_LENGTH = 1000  # RFC 5321 4.5.3.1.6: 998 octets plus CRLF
# IMAP: RFC 7162 4 asks servers to accept command lines of at least 8192 octets.
MAILHOST_IMAP_MAX_LINE_LENGTH = env_int("MAILHOST_IMAP_MAX_LINE_LENGTH", 65536, minimum=8192)
MAILHOST_IMAP_MAX_LITERAL_SIZE = env_int(
    "MAILHOST_IMAP_MAX_LITERAL_SIZE", MAILHOST_MAX_MESSAGE_SIZE, minimum=1024
)
# Before login only LOGIN and AUTHENTICATE take literals, and small ones (issue 14: 40
# connections each announcing a 50 MB literal held 2 GB).
MAILHOST_IMAP_MAX_LITERAL_BEFORE_AUTH = env_int(
    "MAILHOST_IMAP_MAX_LITERAL_BEFORE_AUTH", 8192, minimum=256
)
# Keywords (IMAP flags without a backslash): caps so that one client cannot make every FLAGS
# response huge; the length is Dovecot's mail_max_keyword_length.
MAILHOST_IMAP_MAX_KEYWORDS_PER_FOLDER = env_int(
    "MAILHOST_IMAP_MAX_KEYWORDS_PER_FOLDER", 256, minimum=1
)
MAILHOST_IMAP_MAX_KEYWORDS_PER_MESSAGE = env_int(
    "MAILHOST_IMAP_MAX_KEYWORDS_PER_MESSAGE", 64, minimum=1
)
MAILHOST_IMAP_MAX_KEYWORD_LENGTH = env_int("MAILHOST_IMAP_MAX_KEYWORD_LENGTH", 50, minimum=1)
# SEARCH/SORT RETURN (UPDATE) contexts one IMAP session keeps live at once (RFC 5267 4.3.1:
# at least one; beyond it `* NO [NOUPDATE "tag"]`, as Dovecot's 10).
MAILHOST_IMAP_MAX_UPDATE_CONTEXTS = env_int("MAILHOST_IMAP_MAX_UPDATE_CONTEXTS", 10, minimum=1)
MAILHOST_IMAP_MAX_COMMANDS_BEFORE_AUTH = env_int(
    "MAILHOST_IMAP_MAX_COMMANDS_BEFORE_AUTH", 50, minimum=5
)
MAILHOST_IMAP_MAX_AUTH_FAILURES = env_int("MAILHOST_IMAP_MAX_AUTH_FAILURES", 3, minimum=1)
# RFC 9051 5.4: the autologout timer is at least 30 minutes (IDLE included).
MAILHOST_IMAP_IDLE_TIMEOUT = env_int("MAILHOST_IMAP_IDLE_TIMEOUT", 30 * 60, minimum=30 * 60)
MAILHOST_IMAP_PREAUTH_TIMEOUT = env_int("MAILHOST_IMAP_PREAUTH_TIMEOUT", 60, minimum=10)
MAILHOST_IMAP_MAX_CONNECTIONS = env_int("MAILHOST_IMAP_MAX_CONNECTIONS", 5000, minimum=1)
MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER = env_int(
    "MAILHOST_IMAP_MAX_CONNECTIONS_PER_USER", 50, minimum=1
)
MAILHOST_IMAP_WORKER_THREADS = env_int("MAILHOST_IMAP_WORKER_THREADS", 16, minimum=1)
MAILHOST_DEFAULT_QUOTA = env_int("MAILHOST_DEFAULT_QUOTA", 0)  # bytes; 0 means unlimited
# messages in all of a new mailbox's folders (RFC 9208 MESSAGE); 0 means unlimited
MAILHOST_DEFAULT_QUOTA_MESSAGES = env_int("MAILHOST_DEFAULT_QUOTA_MESSAGES", 0)
MAILHOST_ALLOW_PLAINTEXT_AUTH = env_bool("MAILHOST_ALLOW_PLAINTEXT_AUTH", False)
MAILHOST_MAX_CONNECTIONS = env_int("MAILHOST_MAX_CONNECTIONS", 2000, minimum=1)
MAILHOST_MAX_CONNECTIONS_PER_IP = env_int("MAILHOST_MAX_CONNECTIONS_PER_IP", 100, minimum=1)
# listen(2) backlog of every listener. A burst of connects beyond it overflows the accept
# queue: the kernel drops the handshake's last ACK, and a client whose SYN-ACK retries run
# out is left "connected" to a socket the server never sees. The kernel caps it at somaxconn.
MAILHOST_LISTEN_BACKLOG = env_int("MAILHOST_LISTEN_BACKLOG", 4096, minimum=1)
# Worker processes sharing the listening ports (mailhost/processes.py): the CPUs this process
# may run on by default; 1 serves everything in one process.
MAILHOST_PROCESSES = env_int(
    "MAILHOST_PROCESSES",
    len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
    minimum=1,
)
# glibc's malloc arenas in each server process (mailhost/runner.py). By default glibc gives
# threads up to 8 arenas per CPU, each a heap of its own kept near its high-water mark: with
# IMAP's and SMTP's database threads, the web app's and delivery's, a worker had 15. Those
# threads mostly wait for the GIL, so sharing 2 costs them no measurable contention, and
# saves 7-9 MiB at 1000-10000 idle IMAP connections (issue 22). 0: glibc's own default.
MAILHOST_MALLOC_ARENA_MAX = env_int("MAILHOST_MALLOC_ARENA_MAX", 2)
# The servers' event loop (mailhost/eventloop.py): uvloop's when it is installed (auto), or
# one named; `uvloop` without the package installed is an error.
MAILHOST_EVENT_LOOP = env_choice("MAILHOST_EVENT_LOOP", "auto", ("auto", "uvloop", "asyncio"))
MAILHOST_ALIAS_MAX_DEPTH = 10
# Sieve at delivery (mailboxes/mda.py). SRS: forwarded mail's envelope sender, keyed by
# MAILHOST_SRS_SECRET (else derived from SECRET_KEY), valid this many days for bounces.
MAILHOST_SRS_SECRET = env_str("MAILHOST_SRS_SECRET")
if MAILHOST_SRS_SECRET is not None and len(MAILHOST_SRS_SECRET) < 16:
    raise ImproperlyConfigured(
        f"MAILHOST_SRS_SECRET is too short ({len(MAILHOST_SRS_SECRET)} characters; give at least 16)"
    )
MAILHOST_SRS_MAX_AGE = env_int("MAILHOST_SRS_MAX_AGE", 21, minimum=1, maximum=1000)
# Redirects one delivery's scripts may make (Pigeonhole's sieve_max_redirects), and the
# number of Delivered-To fields past which a message is not redirected again (a loop).
MAILHOST_SIEVE_MAX_REDIRECTS = env_int("MAILHOST_SIEVE_MAX_REDIRECTS", 4, minimum=0, maximum=100)
MAILHOST_SIEVE_MAX_HOPS = env_int("MAILHOST_SIEVE_MAX_HOPS", 10, minimum=1, maximum=100)
# CPU time one script may take per message (milliseconds), and the shortest vacation
# interval a script may ask for (seconds; RFC 6131 :seconds below it are raised to it).
MAILHOST_SIEVE_CPU_LIMIT_MS = env_int("MAILHOST_SIEVE_CPU_LIMIT_MS", 1000, minimum=1)
MAILHOST_SIEVE_VACATION_MIN_SECONDS = env_int(
    "MAILHOST_SIEVE_VACATION_MIN_SECONDS", 3600, minimum=0, maximum=30 * 86400
)
# Grace period before a blob file with no row is considered an orphan of a crashed write.
MAILHOST_BLOB_ORPHAN_AGE = env_int("MAILHOST_BLOB_ORPHAN_AGE", 3600)
# Messages up to this many bytes are stored in their Blob row, made durable by the commit
# that files them, instead of a file synced (with its directory) before it; 0: always files.
MAILHOST_BLOB_INLINE_MAX = env_int("MAILHOST_BLOB_INLINE_MAX", 64 * 1024, minimum=0)
# Readers of a message at least MAILHOST_BLOB_STREAM_MIN bytes (IMAP FETCH of its bytes, POP3
# RETR/TOP, the webmail's download) take them from the store in chunks of
# MAILHOST_BLOB_STREAM_CHUNK bytes (one GET or one open file), never the whole message at once.
MAILHOST_BLOB_STREAM_MIN = env_int("MAILHOST_BLOB_STREAM_MIN", 1024 * 1024, minimum=1)
MAILHOST_BLOB_STREAM_CHUNK = env_int("MAILHOST_BLOB_STREAM_CHUNK", 256 * 1024, minimum=1024)
MAILHOST_AUTH_CACHE_SECONDS = env_int("MAILHOST_AUTH_CACHE_SECONDS", 300)
# Webmail: a session idle this long ends (SESSION_COOKIE_AGE caps it in any case).
MAILHOST_WEBMAIL_IDLE_SECONDS = env_int("MAILHOST_WEBMAIL_IDLE_SECONDS", 8 * 3600, minimum=60)
# Webmail: characters of an HTML body read as markup (text for search, replies, the thread
# view; the sanitized frame); the rest is left out, so hostile HTML costs bounded time.
MAILHOST_WEBMAIL_HTML_LIMIT = env_int("MAILHOST_WEBMAIL_HTML_LIMIT", 1024 * 1024, minimum=1024)
# Outbound delivery (delivery/). The retry schedule is delivery.retry.RETRY_SCHEDULE; the
# environment may replace it with comma-separated durations, `0, 5m, 10m, 1h` or seconds
# (tests use a short one).
MAILHOST_RETRY_SCHEDULE = env_durations("MAILHOST_RETRY_SCHEDULE")
MAILHOST_QUEUE_LIFETIME = env_int("MAILHOST_QUEUE_LIFETIME", 5 * 86400, minimum=1)  # expiry
MAILHOST_DELAY_WARNING = env_int("MAILHOST_DELAY_WARNING", 4 * 3600)  # 0: no delay DSNs
# Finished spool entries stay this long (admin, webmail's delivery status), then go.
MAILHOST_QUEUE_KEEP = env_int("MAILHOST_QUEUE_KEEP", 7 * 86400)
MAILHOST_SWEEP_INTERVAL = env_duration("MAILHOST_SWEEP_INTERVAL", 30, minimum=0.01)
MAILHOST_DELIVERY_LEASE = env_int("MAILHOST_DELIVERY_LEASE", 600, minimum=1)
MAILHOST_DELIVERY_THREADS = env_int("MAILHOST_DELIVERY_THREADS", 2)
# Delivery in N child processes of runmail/runworker (each `runworker` with
# MAILHOST_DELIVERY_THREADS threads, its own GIL), rather than threads beside the listeners;
# without REDIS_URL each takes the messages whose id % N is its share (MAILHOST_DELIVERY_SHARE,
# set by the parent: "i/N"), handed to it by id through a pipe from the parent (its read end:
# MAILHOST_DELIVERY_WAKE_FD), and found by a sweep every few seconds for the rest.
MAILHOST_DELIVERY_PROCESSES = env_int("MAILHOST_DELIVERY_PROCESSES", 0)
MAILHOST_DELIVERY_SHARE: tuple[int, int] | None = None
if env_str("MAILHOST_DELIVERY_SHARE"):
    _share = env_str("MAILHOST_DELIVERY_SHARE").strip()
    _index, _, _count = _share.partition("/")
    if not (_index.isdigit() and _count.isdigit() and int(_index) < int(_count)):
        raise ImproperlyConfigured(
            f"MAILHOST_DELIVERY_SHARE={_share!r} must be i/N with 0 <= i < N"
        )
    MAILHOST_DELIVERY_SHARE = (int(_index), int(_count))
MAILHOST_DELIVERY_WAKE_FD = env_int("MAILHOST_DELIVERY_WAKE_FD", -1, minimum=-1)
MAILHOST_OUTBOUND_CONNECT_TIMEOUT = env_int("MAILHOST_OUTBOUND_CONNECT_TIMEOUT", 30, minimum=1)
MAILHOST_OUTBOUND_TIMEOUT = env_int("MAILHOST_OUTBOUND_TIMEOUT", 300, minimum=1)
MAILHOST_OUTBOUND_TLS_VERIFY = env_bool("MAILHOST_OUTBOUND_TLS_VERIFY", False)
# Connection reuse and politeness per destination (delivery/client.py ConnectionCache,
# delivery/destinations.py): seconds an idle session waits for the next message to the same
# host (0: one session per message), messages per session, sessions at once and messages a
# second per destination (0: no rate limit).
MAILHOST_OUTBOUND_IDLE_TIMEOUT = env_duration("MAILHOST_OUTBOUND_IDLE_TIMEOUT", 5)
MAILHOST_OUTBOUND_REUSE_LIMIT = env_int("MAILHOST_OUTBOUND_REUSE_LIMIT", 100)
MAILHOST_OUTBOUND_DESTINATION_CONCURRENCY = env_int(
    "MAILHOST_OUTBOUND_DESTINATION_CONCURRENCY", 20, minimum=1
)
MAILHOST_OUTBOUND_DESTINATION_RATE = env_float("MAILHOST_OUTBOUND_DESTINATION_RATE", 0.0)
if MAILHOST_OUTBOUND_DESTINATION_RATE < 0:
    raise ImproperlyConfigured(
        f"MAILHOST_OUTBOUND_DESTINATION_RATE={MAILHOST_OUTBOUND_DESTINATION_RATE:g}"
        " must be at least 0 (0: no limit)"
    )
# Outbound TLS policies (delivery/tlspolicy.py): DANE (RFC 7672) when the resolver validates
# DNSSEC, MTA-STS (RFC 8461) policies fetched over HTTPS; the CAs that verify peers and
# policy servers (system's when unset).
MAILHOST_DANE = env_bool("MAILHOST_DANE", True)
# Full-text search (mailboxes/fulltext.py): texts longer than this are not indexed (searches
# read those messages' bytes), and the indexer sweeps for unindexed mail this often.
MAILHOST_FTS_MAX_TEXT = env_int("MAILHOST_FTS_MAX_TEXT", 10 * 1024 * 1024, minimum=1024)
MAILHOST_FTS_INTERVAL = env_duration("MAILHOST_FTS_INTERVAL", 30, minimum=1)
# Loops: a message with more Received fields is refused (Postfix's hopcount_limit is 50).
MAILHOST_MAX_HOPS = env_int("MAILHOST_MAX_HOPS", 50, minimum=1)
# Source addresses of outbound SMTP connections (one per address family), or the system's.
MAILHOST_OUTBOUND_BIND = env_ip_addresses("MAILHOST_OUTBOUND_BIND")
MAILHOST_MTA_STS = env_bool("MAILHOST_MTA_STS", True)
MAILHOST_MTA_STS_TIMEOUT = env_duration("MAILHOST_MTA_STS_TIMEOUT", 10, minimum=1)
MAILHOST_MTA_STS_PORT = env_port("MAILHOST_MTA_STS_PORT", 443)
MAILHOST_OUTBOUND_CA_FILE = env_file("MAILHOST_OUTBOUND_CA_FILE")
# Aggregate reports we send (delivery/outreports): TLS reports (RFC 8460) about our outbound
# sessions to the recipient domains, DMARC aggregate reports (RFC 7489 7.2) about the mail we
# received to its From domains, daily, from MAILHOST_REPORTS_FROM (default: noreply@ the
# hosted domain of MAILHOST_HOSTNAME, else the first hosted domain) as MAILHOST_REPORTS_ORG.
MAILHOST_TLS_REPORTS = env_bool("MAILHOST_TLS_REPORTS", True)
MAILHOST_DMARC_REPORTS = env_bool("MAILHOST_DMARC_REPORTS", True)
MAILHOST_REPORTS_FROM = env_str("MAILHOST_REPORTS_FROM")
if MAILHOST_REPORTS_FROM is not None and not _is_address(MAILHOST_REPORTS_FROM):
    raise ImproperlyConfigured(f"MAILHOST_REPORTS_FROM={MAILHOST_REPORTS_FROM!r} is not an address")
MAILHOST_REPORTS_ORG = env_str("MAILHOST_REPORTS_ORG")
if MAILHOST_REPORTS_ORG is not None and (
    len(MAILHOST_REPORTS_ORG) > 100 or not MAILHOST_REPORTS_ORG.isprintable()
):
    raise ImproperlyConfigured(
        "MAILHOST_REPORTS_ORG must be one line of at most 100 printable characters"
    )
# Postfix's smtp_line_length_limit: longer lines are broken on the way out; 0: never.
MAILHOST_OUTBOUND_LINE_LENGTH_LIMIT = env_int(
    "MAILHOST_OUTBOUND_LINE_LENGTH_LIMIT", 998, maximum=998
)
if 0 < MAILHOST_OUTBOUND_LINE_LENGTH_LIMIT < 78:
    raise ImproperlyConfigured(
        f"MAILHOST_OUTBOUND_LINE_LENGTH_LIMIT={MAILHOST_OUTBOUND_LINE_LENGTH_LIMIT}"
        " must be 0 (off) or from 78 to 998"
    )
MAILHOST_DNS_TIMEOUT = env_duration("MAILHOST_DNS_TIMEOUT", 10, minimum=0.01)
# Inbound trust on port 25 (delivery/inbound): SPF, DKIM, ARC and DMARC checks, bounded in
# time as a whole; sealers whose valid ARC chain that saw DMARC pass overrides a DMARC failure.
MAILHOST_INBOUND_CHECKS = env_bool("MAILHOST_INBOUND_CHECKS", True)
MAILHOST_INBOUND_CHECK_TIMEOUT = env_duration("MAILHOST_INBOUND_CHECK_TIMEOUT", 20, minimum=0.1)
MAILHOST_ARC_TRUSTED_SEALERS = env_domain_names("MAILHOST_ARC_TRUSTED_SEALERS", "")
# DNS records to publish (delivery/dnsrecords.py, `manage.py dnsrecords`): the addresses the
# world reaches this server on (A/AAAA and PTR), the CAs allowed to issue for hosted domains,
# and the MTA-STS policy's mode (RFC 8461 5: testing reports, enforce refuses).
MAILHOST_PUBLIC_ADDRESSES = env_ip_addresses("MAILHOST_PUBLIC_ADDRESSES")
MAILHOST_CAA_ISSUERS = env_domain_names("MAILHOST_CAA_ISSUERS", "letsencrypt.org")
MAILHOST_MTA_STS_MODE = env_choice("MAILHOST_MTA_STS_MODE", "testing", ("testing", "enforce"))
# POP3 (protocols/pop3). RFC 1939 3: an idle timer, if any, must be at least 10 minutes.
MAILHOST_POP3_IDLE_TIMEOUT = env_int("MAILHOST_POP3_IDLE_TIMEOUT", 600, minimum=600)
MAILHOST_POP3_MAX_LINE_LENGTH = env_int("MAILHOST_POP3_MAX_LINE_LENGTH", 2048, minimum=512)
MAILHOST_POP3_MAX_AUTH_FAILURES = env_int("MAILHOST_POP3_MAX_AUTH_FAILURES", 3, minimum=1)
MAILHOST_POP3_MAX_BAD_COMMANDS = env_int("MAILHOST_POP3_MAX_BAD_COMMANDS", 20, minimum=1)
# One POP3 session per maildrop across front ends: a lease renewed while the session lives.
MAILHOST_POP3_LEASE_SECONDS = env_int("MAILHOST_POP3_LEASE_SECONDS", 120, minimum=10)
MAILHOST_POP3_LOGIN_DELAY = env_int("MAILHOST_POP3_LOGIN_DELAY", 0)  # RFC 2449 6.8; 0: off
# A new login takes the maildrop over from a live session (a phone's half-open one); false: IN-USE.
MAILHOST_POP3_TAKEOVER = env_bool("MAILHOST_POP3_TAKEOVER", True)
MAILHOST_POP3_EXPIRE = env_choice("MAILHOST_POP3_EXPIRE", "", ("NEVER", "0"))  # RFC 2449 6.7
# ManageSieve (protocols/managesieve, RFC 5804): autologout, longest command line (literals
# excluded), largest literal before login (AUTHENTICATE), and when a session is closed.
# RFC 5804 1.2: an autologout after login is at least 30 minutes.
MAILHOST_MANAGESIEVE_IDLE_TIMEOUT = env_int("MAILHOST_MANAGESIEVE_IDLE_TIMEOUT", 1800, minimum=1800)
MAILHOST_MANAGESIEVE_MAX_LINE_LENGTH = env_int(
    "MAILHOST_MANAGESIEVE_MAX_LINE_LENGTH", 8192, minimum=1024
)
MAILHOST_MANAGESIEVE_MAX_LITERAL_BEFORE_AUTH = env_int(
    "MAILHOST_MANAGESIEVE_MAX_LITERAL_BEFORE_AUTH", 8192, minimum=256
)
MAILHOST_MANAGESIEVE_MAX_AUTH_FAILURES = env_int(
    "MAILHOST_MANAGESIEVE_MAX_AUTH_FAILURES", 3, minimum=1
)
MAILHOST_MANAGESIEVE_MAX_BAD_COMMANDS = env_int(
    "MAILHOST_MANAGESIEVE_MAX_BAD_COMMANDS", 20, minimum=1
)
# Sieve scripts per mailbox and octets per script (ManageSieve QUOTA/MAXSCRIPTS, /MAXSIZE; the
# webmail and the domain default too).
MAILHOST_SIEVE_MAX_SCRIPTS = env_int("MAILHOST_SIEVE_MAX_SCRIPTS", 20, minimum=1)
MAILHOST_SIEVE_MAX_SCRIPT_SIZE = env_int(
    "MAILHOST_SIEVE_MAX_SCRIPT_SIZE", 1024 * 1024, minimum=1024
)
# SMTP (RFC 5321 4.5.3.2.7: 5 minutes between commands; 4.5.3.2.5: 3 minutes per data block).
MAILHOST_SMTP_COMMAND_TIMEOUT = env_int("MAILHOST_SMTP_COMMAND_TIMEOUT", 300, minimum=1)
MAILHOST_SMTP_DATA_TIMEOUT = env_int("MAILHOST_SMTP_DATA_TIMEOUT", 180, minimum=1)
# AUTH on port 25 (after STARTTLS); the MTA port normally takes mail only for our domains.
MAILHOST_SMTP_AUTH_ON_MTA = env_bool("MAILHOST_SMTP_AUTH_ON_MTA", False)
# "refuse" (550 5.6.0) or "normalize" (to CRLF) a message with a bare CR or LF.
MAILHOST_SMTP_BARE_LINE_ENDINGS = env_choice(
    "MAILHOST_SMTP_BARE_LINE_ENDINGS", "refuse", ("refuse", "normalize")
)
# Longest line of a message taken over SMTP, in octets without the CRLF. RFC 5322 2.1.1's 998
# is a MUST for senders that real senders break; Postfix takes longer lines, so do we.
MAILHOST_SMTP_MAX_LINE_LENGTH = env_int(
    "MAILHOST_SMTP_MAX_LINE_LENGTH", 1024 * 1024, minimum=998, maximum=MAILHOST_MAX_MESSAGE_SIZE
)
# "refuse" (550 5.6.0) or "strip" NUL octets in a message.
MAILHOST_SMTP_NUL_BYTES = env_choice("MAILHOST_SMTP_NUL_BYTES", "refuse", ("refuse", "strip"))
# Message data beyond this many octets waits for its end in a private temporary file in
# MAILHOST_DATA_DIR/tmp, not in memory.
MAILHOST_SMTP_SPOOL_THRESHOLD = env_int("MAILHOST_SMTP_SPOOL_THRESHOLD", 256 * 1024, minimum=0)
# Whole DATA (or BDAT transaction) in seconds, however steadily the bytes trickle in.
MAILHOST_SMTP_DATA_TOTAL_TIMEOUT = env_int("MAILHOST_SMTP_DATA_TOTAL_TIMEOUT", 1800, minimum=1)
# Connections to ports 587 and 465 together, in total and per client address; port 25 has
# MAILHOST_MAX_CONNECTIONS and MAILHOST_MAX_CONNECTIONS_PER_IP to itself.
MAILHOST_SUBMISSION_MAX_CONNECTIONS = env_int("MAILHOST_SUBMISSION_MAX_CONNECTIONS", 500, minimum=1)
MAILHOST_SUBMISSION_MAX_CONNECTIONS_PER_IP = env_int(
    "MAILHOST_SUBMISSION_MAX_CONNECTIONS_PER_IP", 50, minimum=1
)
# Once port 25 holds more than this fraction of its cap, a session that has not started a
# transaction waits MAILHOST_SMTP_BUSY_COMMAND_TIMEOUT seconds for its next command.
MAILHOST_SMTP_BUSY_FRACTION = env_fraction("MAILHOST_SMTP_BUSY_FRACTION", 0.5)
MAILHOST_SMTP_BUSY_COMMAND_TIMEOUT = env_int("MAILHOST_SMTP_BUSY_COMMAND_TIMEOUT", 10, minimum=1)
# Clients (addresses/CIDRs) that may use a hosted domain's address as MAIL FROM on port 25
# without AUTH (a web server's or a printer's relay); their mail is marked all the same.
MAILHOST_SMTP_HOSTED_SENDER_CLIENTS = env_networks("MAILHOST_SMTP_HOSTED_SENDER_CLIENTS")
# Seconds a stopping server lets transactions in flight finish before it drops them.
MAILHOST_SHUTDOWN_GRACE = env_int("MAILHOST_SHUTDOWN_GRACE", 30, minimum=0)
# Threads that run SMTP's database and storage work (its own pool, apart from other protocols).
MAILHOST_SMTP_WORKER_THREADS = env_int("MAILHOST_SMTP_WORKER_THREADS", 16, minimum=1)
# Deliveries that arrive while another commits share its next transaction (and its WAL sync):
# at most this many a transaction; 1 gives every delivery a transaction of its own.
MAILHOST_GROUP_COMMIT_MAX = env_int("MAILHOST_GROUP_COMMIT_MAX", 64, minimum=1)
# SMTP ports 25 and 587 expect a PROXY protocol header (v1 or v2) from a load balancer first.
MAILHOST_SMTP_PROXY_PROTOCOL = env_bool("MAILHOST_SMTP_PROXY_PROTOCOL", False)
# Load balancers (addresses/CIDRs) whose connections to any mail listener start with a PROXY
# v1/v2 header naming the client (protocols/proxy.py); everyone else is served directly.
MAILHOST_PROXY_TRUSTED = env_networks("MAILHOST_PROXY_TRUSTED")
# Clients (addresses/CIDRs, as mailhost.proxy.client_address sees them) that may read /metrics.
MAILHOST_METRICS_ALLOW = env_networks("MAILHOST_METRICS_ALLOW", "127.0.0.1, ::1")

# Spam verdict of mail from port 25 (delivery/spam): the scorer, its thresholds (points, as
# SpamAssassin and rspamd count them), DNS lists (off until zones are named) and greylisting.
MAILHOST_SPAM_BACKEND = env_choice("MAILHOST_SPAM_BACKEND", "builtin", ("builtin", "rspamd", "off"))
MAILHOST_RSPAMD_URL = env_url("MAILHOST_RSPAMD_URL", ("http", "https")) or "http://127.0.0.1:11334"
MAILHOST_RSPAMD_TIMEOUT = env_duration("MAILHOST_RSPAMD_TIMEOUT", 10, minimum=0.1)
MAILHOST_SPAM_JUNK_SCORE = env_float("MAILHOST_SPAM_JUNK_SCORE", 5.0)
MAILHOST_SPAM_REJECT_SCORE = env_float("MAILHOST_SPAM_REJECT_SCORE", 15.0)
if MAILHOST_SPAM_REJECT_SCORE < MAILHOST_SPAM_JUNK_SCORE:
    raise ImproperlyConfigured(
        f"MAILHOST_SPAM_REJECT_SCORE={MAILHOST_SPAM_REJECT_SCORE:g} must be at least"
        f" MAILHOST_SPAM_JUNK_SCORE={MAILHOST_SPAM_JUNK_SCORE:g}"
    )
MAILHOST_DNSBL_ZONES = env_scored_zones("MAILHOST_DNSBL_ZONES", 3.0)
MAILHOST_DNSWL_ZONES = env_scored_zones("MAILHOST_DNSWL_ZONES", -3.0)
# RFC 6647 greylisting at RCPT on port 25: an unknown (network, sender, recipient) triple
# gets 451 4.7.1 until it comes back after the delay; one that never does is forgotten after
# the retry window, one that did is remembered until unseen for the expiry.
MAILHOST_GREYLIST = env_bool("MAILHOST_GREYLIST", False)
MAILHOST_GREYLIST_DELAY = env_duration("MAILHOST_GREYLIST_DELAY", 300)
MAILHOST_GREYLIST_RETRY_WINDOW = env_duration(
    "MAILHOST_GREYLIST_RETRY_WINDOW", 2 * 86400, minimum=60
)
MAILHOST_GREYLIST_EXPIRY = env_duration("MAILHOST_GREYLIST_EXPIRY", 35 * 86400, minimum=60)

# Blobs go through Django's storage API, so django-storages can put them in S3.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "blobs": {
        "BACKEND": "mailboxes.storage.DurableFileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "blobs")},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# With a bucket, blobs are objects in S3-compatible storage (django-storages, boto3): every
# front end and worker on every machine reads the same ones. Unset: files under the data dir.
MAILHOST_S3_BUCKET = env_s3_bucket("MAILHOST_S3_BUCKET")
MAILHOST_S3_ENDPOINT_URL = env_url("MAILHOST_S3_ENDPOINT_URL", ("http", "https"))
MAILHOST_S3_REGION = env_s3_region("MAILHOST_S3_REGION")
MAILHOST_S3_ACCESS_KEY_ID = env_str("MAILHOST_S3_ACCESS_KEY_ID")
MAILHOST_S3_SECRET_ACCESS_KEY = env_str("MAILHOST_S3_SECRET_ACCESS_KEY")
if bool(MAILHOST_S3_ACCESS_KEY_ID) != bool(MAILHOST_S3_SECRET_ACCESS_KEY):
    raise ImproperlyConfigured(
        "MAILHOST_S3_ACCESS_KEY_ID and MAILHOST_S3_SECRET_ACCESS_KEY go together: give both"
        " (or neither, for the credentials boto3 finds on its own)"
    )
if MAILHOST_S3_BUCKET:
    STORAGES["blobs"] = {
        "BACKEND": "mailboxes.s3storage.DurableS3Storage",
        "OPTIONS": {
            "bucket_name": MAILHOST_S3_BUCKET,
            "endpoint_url": MAILHOST_S3_ENDPOINT_URL,
            "region_name": MAILHOST_S3_REGION,
            "access_key": MAILHOST_S3_ACCESS_KEY_ID,
            "secret_key": MAILHOST_S3_SECRET_ACCESS_KEY,
            "location": "blobs",
        },
    }

# --- Web ---------------------------------------------------------------------------------

# Mailbox passwords set in the admin or by addmailbox, and admin users' passwords.
MAILHOST_PASSWORD_MIN_LENGTH = env_int("MAILHOST_PASSWORD_MIN_LENGTH", 10, minimum=1)
_VALIDATION = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": f"{_VALIDATION}.MinimumLengthValidator",
        "OPTIONS": {"min_length": MAILHOST_PASSWORD_MIN_LENGTH},
    },
    {"NAME": f"{_VALIDATION}.CommonPasswordValidator"},
    {"NAME": f"{_VALIDATION}.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# The languages a reader may choose under Settings > Account (webmail.timezones activates it
# per request; before any choice LocaleMiddleware takes the browser's Accept-Language); a
# translation adds its row here and its catalogue under locale/ (README: Translations).
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("fr", "Français")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
LOGIN_URL = "webmail:login"
SESSION_COOKIE_AGE = env_int("MAILHOST_SESSION_AGE", 14 * 24 * 3600, minimum=60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "SAMEORIGIN"
SECURE_CONTENT_TYPE_NOSNIFF = True
# Strict-Transport-Security on HTTPS responses (Django sends it on those only); 0: none.
SECURE_HSTS_SECONDS = env_int("MAILHOST_HSTS_SECONDS", 365 * 86400)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MAILHOST_HSTS_INCLUDE_SUBDOMAINS", False)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAILHOST_MAX_MESSAGE_SIZE
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {
            "class": "mailhost.logformat.PlainFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_log_level("MAILHOST_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
