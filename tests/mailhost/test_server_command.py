"""The listener commands' system checks and runmail's migrations run in a forked child
(mailhost.runner.apart): what they import stays out of the image the workers are forked from,
and their failures stop the command as before."""

from __future__ import annotations

import sys

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from mailhost import runner

pytestmark = pytest.mark.skipif(not hasattr(runner.os, "fork"), reason="needs fork()")


def test_apart_keeps_the_child_imports_out_of_this_process(tmp_path, monkeypatch):
    (tmp_path / "heavy_for_apart.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    seen = tmp_path / "seen"

    def work() -> None:
        import heavy_for_apart

        seen.write_text(str(heavy_for_apart.LOADED))

    runner.apart(work)
    assert seen.read_text() == "True"
    assert "heavy_for_apart" not in sys.modules


def test_apart_raises_the_child_failure_here():
    def work() -> None:
        raise CommandError("the child says no")

    with pytest.raises(CommandError, match="the child says no"):
        runner.apart(work)


def test_a_failing_system_check_still_stops_a_listener_command(monkeypatch):
    started = []
    monkeypatch.setattr(runner, "run", lambda *args, **kwargs: started.append(args))

    def failing(app_configs, **kwargs):
        return [checks.Error("planted for the test", id="mailhost.E999")]

    checks.register(failing)
    try:
        with pytest.raises(SystemCheckError, match="mailhost.E999"):
            call_command("runimap", skip_checks=False)
    finally:
        checks.registry.registry.registered_checks.discard(failing)
    assert started == []
    call_command("runimap", skip_checks=False)  # the check gone: it starts
    assert started == [(("protocols.imap.server",),)]
