"""Sieve plans under the group commit: messages batched into one transaction each get their
own plan carried out, and the vacation rate holds across them (one reply)."""

from __future__ import annotations

import pytest

from delivery.accept import message_accept
from delivery.models import OutboundMessage
from mailboxes.groupcommit import committer
from mailboxes.models import Message
from tests.mailboxes.test_groupcommit import queue_behind
from tests.support.sievescripts import give_script

pytestmark = pytest.mark.django_db(transaction=True)


def raw(n: int) -> bytes:
    return (
        f"From: bob@remote.test\r\nTo: alice@example.org\r\nSubject: n{n}\r\n"
        f"Message-ID: <n{n}@remote.test>\r\n\r\nbody\r\n"
    ).encode()


def test_batched_deliveries_send_one_vacation_reply_and_file_every_copy(make_mailbox):
    alice = make_mailbox("alice@example.org")
    give_script(
        alice,
        'require ["vacation", "fileinto", "mailbox"];\n'
        'fileinto :create "Seen";\n'
        'vacation :days 1 "Away.";\n',
    )
    pieces = {
        f"m{n}": (
            lambda n=n: message_accept(
                raw=raw(n), mail_from="bob@remote.test", recipients=["alice@example.org"]
            )
        )
        for n in range(5)
    }
    outcomes = queue_behind(committer, pieces, submit=False)
    assert all(not isinstance(o, Exception) and o.accepted for o in outcomes.values()), outcomes
    assert committer.batches >= 1
    assert Message.objects.filter(folder__mailbox=alice, folder__name="Seen").count() == 5
    replies = OutboundMessage.objects.filter(mail_from="")
    assert replies.count() == 1
