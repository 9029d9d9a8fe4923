#!/usr/bin/env python
"""Django's command-line entry point for Mailhost."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - load the settings: a bad variable fails here
        # Settings read when a listener starts (TLS files, the bind address) fail later, the
        # same way.
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # One line naming the variable, not a traceback through Django's internals.
        sys.exit(f"mailhost: configuration error: {exc}")
    except Exception as exc:
        from mailhost.database import operator_message

        message = operator_message(exc)  # no tables yet, database unreachable
        if message is None:
            raise
        sys.exit(f"mailhost: {message}")


if __name__ == "__main__":
    main()
