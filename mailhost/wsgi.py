"""WSGI entry point: `gunicorn mailhost.wsgi`, with the web access log (mailhost/accesslog.py)."""

import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

from mailhost.accesslog import AccessLog

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mailhost.settings")
try:
    application = AccessLog(get_wsgi_application())
except ImproperlyConfigured as exc:  # one line naming the variable, as manage.py prints it
    print(f"mailhost: configuration error: {exc}", file=sys.stderr)
    # 3: gunicorn's "worker failed to boot", on which its master stops instead of retrying.
    sys.exit(3)
