"""mailbox_authenticate: the one login check of every protocol."""

from __future__ import annotations

import statistics
import time

import pytest

from mailboxes import services

pytestmark = pytest.mark.django_db


def test_success_returns_the_mailbox(make_mailbox):
    mailbox = make_mailbox("alice@example.org", password="correct horse")
    assert services.mailbox_authenticate(address="alice@example.org", password="correct horse") == (
        mailbox
    )
    # Case-insensitive domain and local part, angle brackets, IDNA spelling.
    assert services.mailbox_authenticate(address="ALICE@Example.ORG", password="correct horse")


def test_idna_and_utf8_address(make_mailbox):
    mailbox = make_mailbox("jörg@bücher.example", password="pw")
    assert services.mailbox_authenticate(address="Jörg@BÜCHER.example", password="pw") == mailbox
    assert services.mailbox_authenticate(address="jörg@xn--bcher-kva.example", password="pw")


@pytest.mark.parametrize(
    "address, password",
    [
        ("alice@example.org", "wrong"),
        ("alice@example.org", ""),
        ("alice@example.org", None),
        ("nobody@example.org", "secret"),
        ("alice@elsewhere.example", "secret"),
        ("not an address", "secret"),
    ],
)
def test_failures_return_none(make_mailbox, address, password):
    make_mailbox("alice@example.org", password="secret")
    assert services.mailbox_authenticate(address=address, password=password) is None


def test_password_is_case_sensitive(make_mailbox):
    make_mailbox("alice@example.org", password="Secret")
    assert services.mailbox_authenticate(address="alice@example.org", password="secret") is None


def test_inactive_mailbox_cannot_log_in_even_after_a_cached_success(make_mailbox):
    mailbox = make_mailbox("alice@example.org", password="secret")
    assert services.mailbox_authenticate(address="alice@example.org", password="secret")
    mailbox.active = False
    mailbox.save()
    assert services.mailbox_authenticate(address="alice@example.org", password="secret") is None


def test_inactive_domain_cannot_log_in(make_mailbox):
    mailbox = make_mailbox("alice@example.org", password="secret")
    assert services.mailbox_authenticate(address="alice@example.org", password="secret")
    mailbox.domain.active = False
    mailbox.domain.save()
    assert services.mailbox_authenticate(address="alice@example.org", password="secret") is None


def test_password_change_elsewhere_invalidates_the_cache(make_mailbox):
    mailbox = make_mailbox("alice@example.org", password="old")
    assert services.mailbox_authenticate(address="alice@example.org", password="old")
    # Another process changes the hash: this process's cache entry no longer matches it.
    from django.contrib.auth.hashers import make_password

    type(mailbox).objects.filter(pk=mailbox.pk).update(password=make_password("new"))
    assert services.mailbox_authenticate(address="alice@example.org", password="old") is None
    assert services.mailbox_authenticate(address="alice@example.org", password="new")


def _interleaved_medians(fns: dict, rounds: int) -> dict[str, float]:
    """Median time of each function, measured in turns so that load on the machine hits all
    of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def test_unknown_address_costs_about_as_much_as_a_wrong_password(make_domain, settings):
    """No account enumeration by timing, measured with the real PBKDF2 hasher."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    services._dummy_hash = None
    make_domain("example.org")
    services.mailbox_create(address="alice@example.org", password="secret")

    def wrong_password():
        assert services.mailbox_authenticate(address="alice@example.org", password="x") is None

    def unknown_address():
        assert services.mailbox_authenticate(address="bob@example.org", password="x") is None

    def unknown_domain():
        assert services.mailbox_authenticate(address="bob@nowhere.example", password="x") is None

    unknown_address()  # the first call makes the dummy hash; not what is measured
    medians = _interleaved_medians(
        {"wrong": wrong_password, "unknown": unknown_address, "foreign": unknown_domain}, 3
    )
    wrong, unknown, foreign = medians["wrong"], medians["unknown"], medians["foreign"]
    print(f"PBKDF2 login medians: wrong {wrong:.3f}s unknown {unknown:.3f}s foreign {foreign:.3f}s")
    # Each costs one PBKDF2 run (tens of milliseconds at least), within a loose factor.
    assert wrong > 0.02, wrong
    assert 0.5 < unknown / wrong < 2.0, medians
    assert 0.5 < foreign / wrong < 2.0, medians


def test_record_login(make_mailbox):
    mailbox = make_mailbox("alice@example.org")
    assert mailbox.last_login_at is None
    services.mailbox_record_login(mailbox=mailbox)
    mailbox.refresh_from_db()
    assert mailbox.last_login_at is not None


def _logins_at_once(count: int, password: str, monkeypatch) -> tuple[list, int]:
    """`count` threads authenticate at once; returns their results and how many password
    hashes were computed."""
    import threading

    real_check = services.check_password
    hashed = []
    gate = threading.Barrier(count)

    def slow_check(*args, **kwargs):
        hashed.append(1)
        time.sleep(0.5)  # the others arrive while this hash is under way
        return real_check(*args, **kwargs)

    monkeypatch.setattr(services, "check_password", slow_check)
    results = [None] * count

    def login(i: int) -> None:
        gate.wait()
        results[i] = services.mailbox_authenticate(address="alice@example.org", password=password)

    threads = [threading.Thread(target=login, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, len(hashed)


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_logins_hash_the_password_once(make_mailbox, monkeypatch):
    mailbox = make_mailbox("alice@example.org", password="secret")
    made = []
    real_make = services.make_password
    monkeypatch.setattr(
        services, "make_password", lambda *a, **k: made.append(1) or real_make(*a, **k)
    )
    results, hashed = _logins_at_once(8, "secret", monkeypatch)
    assert results == [mailbox] * 8
    assert hashed == 1
    assert made == []  # the dummy hash (for unknown users) is not made on the way


@pytest.mark.django_db(transaction=True)
def test_concurrent_wrong_passwords_all_fail_and_are_not_remembered(make_mailbox, monkeypatch):
    make_mailbox("alice@example.org", password="secret")
    results, hashed = _logins_at_once(8, "wrong", monkeypatch)
    assert results == [None] * 8
    assert hashed == 1
    assert services.mailbox_authenticate(address="alice@example.org", password="wrong") is None
    assert services.mailbox_authenticate(address="alice@example.org", password="secret")
