"""Sieve script storage: services validate on upload, one active script per mailbox (a
database constraint), RFC 5804 names, quotas, and the domain's default script."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from mailboxes import selectors, services
from mailboxes.exceptions import (
    AlreadyExists,
    InvalidValue,
    NotFound,
    SieveQuotaExceeded,
    SieveScriptActive,
    SieveScriptInvalid,
)
from mailboxes.models import SieveScript

VALID = 'require "fileinto";\nif header :is "x-list" "a" { fileinto "A"; }\n'
INVALID = "if true {\n  keep;\n"

pytestmark = pytest.mark.django_db


@pytest.fixture
def mailbox(make_mailbox):
    return make_mailbox("alice@example.org")


def test_put_activate_rename_delete(mailbox):
    services.sievescript_put(mailbox=mailbox, name="one", text=VALID)
    services.sievescript_put(mailbox=mailbox, name="two", text="keep;")
    assert selectors.sievescript_active(mailbox.pk) is None
    services.sievescript_activate(mailbox=mailbox, name="one")
    assert selectors.sievescript_active(mailbox.pk).name == "one"
    services.sievescript_activate(mailbox=mailbox, name="two")
    assert [(s.name, s.active) for s in selectors.sievescripts_of(mailbox)] == [
        ("one", False),
        ("two", True),
    ]
    services.sievescript_rename(mailbox=mailbox, old_name="two", new_name="deux")
    assert selectors.sievescript_active(mailbox.pk).name == "deux"
    with pytest.raises(SieveScriptActive):
        services.sievescript_delete(mailbox=mailbox, name="deux")
    with pytest.raises(AlreadyExists):
        services.sievescript_rename(mailbox=mailbox, old_name="one", new_name="deux")
    with pytest.raises(NotFound):
        services.sievescript_activate(mailbox=mailbox, name="missing")
    services.sievescript_activate(mailbox=mailbox, name="")
    services.sievescript_delete(mailbox=mailbox, name="deux")
    assert [s.name for s in selectors.sievescripts_of(mailbox)] == ["one"]
    with pytest.raises(NotFound):
        services.sievescript_delete(mailbox=mailbox, name="deux")


def test_put_with_activate_and_replace_keeps_active(mailbox):
    services.sievescript_put(mailbox=mailbox, name="main", text="keep;", activate=True)
    services.sievescript_put(mailbox=mailbox, name="main", text=VALID)
    script = selectors.sievescript_active(mailbox.pk)
    assert (script.name, script.text) == ("main", VALID)


def test_invalid_scripts_are_refused_when_stored(mailbox):
    with pytest.raises(SieveScriptInvalid) as caught:
        services.sievescript_put(mailbox=mailbox, name="bad", text=INVALID)
    assert caught.value.errors and caught.value.errors[0].line >= 1
    assert selectors.sievescripts_of(mailbox) == []
    assert services.sievescript_check(text=INVALID)
    assert services.sievescript_check(text=VALID) == []


def test_the_database_allows_one_active_script(mailbox):
    SieveScript.objects.create(mailbox=mailbox, name="a", text="keep;", active=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        SieveScript.objects.create(mailbox=mailbox, name="b", text="keep;", active=True)


@pytest.mark.parametrize(
    "name", ["", "a\x00b", "tab\there", "del\x7f", "c1\x85", "line\u2028sep", "e\u0301", "x" * 129]
)
def test_rfc5804_names_are_enforced(mailbox, name):
    with pytest.raises(InvalidValue):
        services.sievescript_put(mailbox=mailbox, name=name, text="keep;")


def test_names_that_are_fine(mailbox):
    for name in ("caf\u00e9", "with space", "x" * 128, "Ünïcödé 🙂"):
        services.sievescript_put(mailbox=mailbox, name=name, text="keep;")


def test_quotas(mailbox, settings):
    settings.MAILHOST_SIEVE_MAX_SCRIPTS = 2
    settings.MAILHOST_SIEVE_MAX_SCRIPT_SIZE = 1024
    services.sievescript_put(mailbox=mailbox, name="a", text="keep;")
    services.sievescript_put(mailbox=mailbox, name="b", text="keep;")
    with pytest.raises(SieveQuotaExceeded) as caught:
        services.sievescript_put(mailbox=mailbox, name="c", text="keep;")
    assert caught.value.resource == "MAXSCRIPTS"
    services.sievescript_put(mailbox=mailbox, name="b", text="discard;")  # a replacement
    with pytest.raises(SieveQuotaExceeded) as caught:
        services.sievescript_put(mailbox=mailbox, name="a", text="#" * 1025 + "\nkeep;")
    assert caught.value.resource == "MAXSIZE"


def test_domain_default_script(mailbox):
    domain = mailbox.domain
    assert selectors.domain_sieve_default(domain.pk) == ""
    services.domain_set_sieve_default(domain=domain, text=VALID)
    assert selectors.domain_sieve_default(domain.pk) == VALID
    with pytest.raises(SieveScriptInvalid):
        services.domain_set_sieve_default(domain=domain, text=INVALID)
    assert selectors.domain_sieve_default(domain.pk) == VALID
    services.domain_set_sieve_default(domain=domain, text="  \n")
    assert selectors.domain_sieve_default(domain.pk) == ""


def test_includes_are_checked_against_the_mailboxs_scripts(mailbox):
    # RFC 6609, as Pigeonhole checks at upload: a missing include is refused unless :optional.
    with pytest.raises(SieveScriptInvalid) as caught:
        services.sievescript_put(
            mailbox=mailbox, name="main", text='require "include";\ninclude "rules";\n'
        )
    assert "does not exist" in str(caught.value)
    services.sievescript_put(
        mailbox=mailbox, name="main", text='require "include";\ninclude :optional "rules";\n'
    )
    services.sievescript_put(mailbox=mailbox, name="rules", text="keep;\n")
    services.sievescript_put(
        mailbox=mailbox, name="main", text='require "include";\ninclude "rules";\n'
    )
    # A script that includes itself (as it is being stored) loops.
    with pytest.raises(SieveScriptInvalid) as caught:
        services.sievescript_put(
            mailbox=mailbox, name="rules", text='require "include";\ninclude "rules";\n'
        )
    assert "loop" in str(caught.value)
    assert services.sievescript_check(text='require "include";\ninclude "x";\n') == []
    assert services.sievescript_check(text='require "include";\ninclude "x";\n', mailbox=mailbox)
