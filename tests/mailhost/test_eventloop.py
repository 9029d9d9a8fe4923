"""MAILHOST_EVENT_LOOP: the servers' loop is uvloop's when it is installed (auto) or named,
asyncio's when named or when uvloop is missing; naming uvloop without it is an error."""

from __future__ import annotations

import asyncio
import smtplib
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from mailboxes.models import Message
from mailhost import eventloop, runner
from tests.support.servers import running

uvloop = pytest.importorskip("uvloop")


def test_auto_and_uvloop_choose_uvloop_when_installed():
    assert eventloop.loop_factory("auto") is uvloop.new_event_loop
    assert eventloop.loop_factory("uvloop") is uvloop.new_event_loop
    assert eventloop.loop_factory("asyncio") is None


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    assert eventloop.loop_factory("auto") is None
    with pytest.raises(ImproperlyConfigured, match="uvloop is not installed"):
        eventloop.loop_factory("uvloop")


def test_behind_a_proxy_balancer_auto_chooses_asyncio_and_uvloop_is_refused():
    # uvloop's transports would report the balancer as every client (protocols/proxy.py).
    assert eventloop.loop_factory("auto", proxy_trusted=True) is None
    with pytest.raises(ImproperlyConfigured, match="MAILHOST_PROXY_TRUSTED"):
        eventloop.loop_factory("uvloop", proxy_trusted=True)


@pytest.mark.parametrize(("choice", "kind"), [("uvloop", uvloop.Loop), ("asyncio", None)])
def test_run_uses_the_configured_loop(settings, choice, kind):
    settings.MAILHOST_EVENT_LOOP = choice

    async def which():
        return type(asyncio.get_running_loop())

    ran_on = eventloop.run(which())
    if kind is None:
        assert not issubclass(ran_on, uvloop.Loop)
    else:
        assert issubclass(ran_on, kind)


@pytest.mark.parametrize("choice", ["uvloop", "asyncio"])
def test_smtp_stores_mail_on_either_loop(live_settings, transactional_db, make_mailbox, choice):
    alice = make_mailbox("alice@example.org")
    live_settings.MAILHOST_EVENT_LOOP = choice
    with running(runner.SMTP) as ports, smtplib.SMTP("127.0.0.1", ports["smtp"]) as client:
        client.ehlo("client.example.net")
        refused = client.sendmail(
            "someone@remote.example",
            ["alice@example.org"],
            b"From: someone@remote.example\r\nSubject: loop\r\n\r\nbody\r\n",
        )
    assert refused == {}

    assert Message.objects.filter(folder__mailbox=alice).count() == 1
