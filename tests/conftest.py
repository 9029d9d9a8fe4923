"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailboxes import services, throttle

# Tests whose subject is not the database or Redis (TLS and certificates, PROXY headers,
# settings, the data dir, the Sieve interpreter and its differential against Pigeonhole, MIME
# against Dovecot, the bench harness): marked `backend_neutral`. CI's PostgreSQL + Redis pass
# leaves them (and the browser tests) to the SQLite pass: -m "not browser and not backend_neutral".
BACKEND_NEUTRAL = (
    "bench/test_quick.py",
    "delivery/test_delivery_processes.py",
    "mailboxes/sieve/",
    "mailhost/test_data_dir.py",
    "mailhost/test_settings.py",
    "protocols/imap/test_dovecot_differential.py",
    "protocols/test_acme_pebble.py",
    "protocols/test_https_reload.py",
    "protocols/test_proxy_protocol.py",
    "protocols/test_sni.py",
)
TESTS = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by markers
def pytest_collection_modifyitems(config, items):
    for item in items:
        relative = item.path.resolve().relative_to(TESTS).as_posix()
        if relative.startswith(BACKEND_NEUTRAL):
            item.add_marker(pytest.mark.backend_neutral)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's, then at the end: close the connections that server threads (protocol
    worker pools, the web app's threads) still hold on PostgreSQL's test database, so that it
    can be dropped."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Real hashing (PBKDF2) is covered by tests that ask for it; the rest need speed.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    services._dummy_hash = None
    services._auth_cache.clear()
    throttle.reset()


@pytest.fixture(autouse=True)
def _inbound_checks_with_a_zone_only(settings):
    # Port 25's SPF/DKIM/DMARC checks ask DNS; a test answers them from its own zone (the
    # `dns_server` fixture turns them on), never from whatever resolver the machine has.
    settings.MAILHOST_INBOUND_CHECKS = False


@pytest.fixture
def latest_schema(transactional_db):
    """For a test that migrates backwards and forwards to a migration of its own: the
    database is at the newest migrations again after it. Left at that migration, every test
    after it ran on an older schema (since 0046 the body search's function was missing)."""
    yield
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture
def blob_dir(settings, tmp_path):
    """A private blob directory per test."""
    path = tmp_path / "blobs"
    settings.STORAGES = {
        **settings.STORAGES,
        "blobs": {
            "BACKEND": "mailboxes.storage.DurableFileSystemStorage",
            "OPTIONS": {"location": str(path)},
        },
    }
    return path


@pytest.fixture
def blob_files(settings, blob_dir):
    """blob_dir with every message in a file, however small (MAILHOST_BLOB_INLINE_MAX=0):
    for tests of the file path. Without it, small messages are stored in their Blob row."""
    settings.MAILHOST_BLOB_INLINE_MAX = 0
    return blob_dir


@pytest.fixture
def live_settings(settings, blob_dir, tmp_path):
    """Listeners on 127.0.0.1 with free ports, for end-to-end tests."""
    settings.MAILHOST_BIND = "127.0.0.1"
    settings.MAILHOST_HOSTNAME = "mx.test.example"
    for name in (
        "SMTP_PORT",
        "SUBMISSION_PORT",
        "SUBMISSIONS_PORT",
        "IMAP_PORT",
        "IMAPS_PORT",
        "POP3_PORT",
        "POP3S_PORT",
        "MANAGESIEVE_PORT",
        "WEB_PORT",
    ):
        setattr(settings, f"MAILHOST_{name}", 0)
    return settings


@pytest.fixture
def make_domain(db, blob_dir):
    def make(name: str = "example.org"):
        return services.domain_create(name=name)

    return make


@pytest.fixture
def make_mailbox(db, blob_dir):
    def make(address: str = "alice@example.org", password: str = "secret", **kwargs):
        from mailboxes.addresses import parse_address
        from mailboxes.models import Domain

        domain_name = parse_address(address).domain
        if not Domain.objects.filter(name=domain_name).exists():
            services.domain_create(name=domain_name)
        return services.mailbox_create(address=address, password=password, **kwargs)

    return make
