"""mailhost.settingsreads: django.conf.settings is read by object's own lookup, and what
override_settings (pytest-django's `settings` fixture) and a setting read for the first time
give is what LazySettings gives."""

from __future__ import annotations

from django.conf import LazySettings, settings
from django.test import override_settings

from mailhost.settingsreads import FastLazySettings


def test_the_settings_are_read_without_lazyobjects_getattribute():
    assert type(settings) is FastLazySettings
    assert isinstance(settings, LazySettings)
    assert type(settings).__getattribute__ is object.__getattribute__
    assert settings.__class__ is type(settings._wrapped)  # LazyObject's proxy, as before


def test_an_override_is_read_and_undone():
    before = settings.MAILHOST_HOSTNAME  # read once: kept in the object's __dict__
    with override_settings(MAILHOST_HOSTNAME="override.example"):
        assert settings.MAILHOST_HOSTNAME == "override.example"
        with override_settings(MAILHOST_HOSTNAME="inner.example"):
            assert settings.MAILHOST_HOSTNAME == "inner.example"
        assert settings.MAILHOST_HOSTNAME == "override.example"
    assert settings.MAILHOST_HOSTNAME == before


def test_the_settings_fixture_and_missing_settings(settings):
    settings.MAILHOST_OUTBOUND_REUSE_LIMIT = 7
    from django.conf import settings as read

    assert read.MAILHOST_OUTBOUND_REUSE_LIMIT == 7
    del settings.MAILHOST_OUTBOUND_REUSE_LIMIT
    assert not hasattr(read, "MAILHOST_OUTBOUND_REUSE_LIMIT")
    assert getattr(read, "NO_SUCH_SETTING", "default") == "default"
