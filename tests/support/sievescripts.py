"""Giving a mailbox a Sieve script in tests, through the storage services (validated on the
way in, as ManageSieve and the webmail store them)."""

from __future__ import annotations


def give_script(mailbox, text: str, *, default: str = "") -> None:  # noqa: ANN001
    from mailboxes import services

    services.sievescript_put(mailbox=mailbox, name="main", text=text, activate=True)
    services.domain_set_sieve_default(domain=mailbox.domain, text=default)
