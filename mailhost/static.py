"""Static files for the in-process web server (admin CSS, webmail assets)."""

from __future__ import annotations

from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.wsgi import get_wsgi_application


def application_with_static():
    # StaticFilesHandler serves from the app directories without collectstatic, which
    # keeps `runmail` a one-command start.
    from mailhost.accesslog import AccessLog

    return AccessLog(StaticFilesHandler(get_wsgi_application()))
