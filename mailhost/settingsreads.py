"""Reading django.conf.settings without a Python call per read.

LazySettings keeps each setting it has read in its own __dict__ (emptied whenever the
settings it wraps change: override_settings, configure), yet every read still runs
LazyObject.__getattribute__, a Python method with a super() call and a getattr of the value's
`_mask_wrapped`, before that dictionary answers; a message submitted and delivered reads
settings about seventy times, in our code and in Django's (the SQLite backend's datetime
conversions, queries_logged at every cursor, timezone.now).

install_settings_reads gives the settings object a subclass of LazySettings whose
__getattribute__ is object's own: a setting already read comes from the instance's __dict__
in C, and one not yet read falls to LazySettings.__getattr__ as before. What
LazyObject.__getattribute__ also did, hiding its proxy methods (__eq__, __len__, __iter__,
...) from a read by name so that hasattr() answers for the wrapped Settings, is left out:
nothing asks the settings object for those by name.
"""

from __future__ import annotations

from django.conf import LazySettings, settings

_set_class = object.__dict__["__class__"].__set__  # LazyObject's __class__ is a property


class FastLazySettings(LazySettings):
    __getattribute__ = object.__getattribute__


def install_settings_reads() -> None:
    """Make django.conf.settings a FastLazySettings, once, if it is Django's LazySettings."""
    if type(settings) is LazySettings:
        _set_class(settings, FastLazySettings)
