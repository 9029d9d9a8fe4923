"""Giving a mailbox a Sieve script in tests: the stored scripts (SieveScript, the domain's
default) when the storage is there, else the same (domain default, user script) pair handed
to the MDA where it reads them (mailboxes.mda._scripts_for)."""

from __future__ import annotations


def give_script(monkeypatch, mailbox, text: str, *, default: str = "") -> None:  # noqa: ANN001
    from mailboxes import mda, models

    if hasattr(models, "SieveScript"):
        models.SieveScript.objects.filter(mailbox=mailbox).delete()
        models.SieveScript.objects.create(mailbox=mailbox, name="main", text=text, active=True)
        models.Domain.objects.filter(pk=mailbox.domain_id).update(sieve_default=default)
        return
    stored = getattr(mda, "_test_scripts", None)
    if stored is None:
        stored = {}
        monkeypatch.setattr(mda, "_test_scripts", stored, raising=False)

        def scripts_for(ids):  # noqa: ANN001, ANN202
            return [entry for mid, entry in stored.items() if mid in ids]

        monkeypatch.setattr(mda, "_scripts_for", scripts_for)
    scripts = tuple(
        (label, body)
        for label, body in (("domain default", default), ("user script", text))
        if body
    )
    address = f"{mailbox.local_part}@{mailbox.domain.name}"
    stored[mailbox.id] = mda._Mailbox(mailbox.id, address, mailbox.domain.name, scripts)
