"""WSGI entry point: `gunicorn mailhost.wsgi`, with the web access log (mailhost/accesslog.py)."""

import os

from django.core.wsgi import get_wsgi_application

from mailhost.accesslog import AccessLog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
application = AccessLog(get_wsgi_application())
