"""The admin's queue page when there is no Redis: the embedded queue of this process.

With REDIS_URL, /admin/rq/ is django-rq's dashboard of that Redis. Without it, delivery runs
on an in-process queue (runmail, runworker), and django-rq's default connection would be
whatever Redis answers on 127.0.0.1:6379, somebody else's: this page shows the spool and the
delivery threads instead, and opens no connection to any Redis.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from delivery import queue
from delivery.selectors import spool_counts

DELIVERY_THREAD_PREFIX = "delivery-"  # delivery.worker.DeliveryService names its threads so
SWEEPER_THREAD_NAME = "delivery-sweeper"


def embedded_queue_status(request: HttpRequest) -> HttpResponse:
    threads = [t for t in threading.enumerate() if t.name.startswith(DELIVERY_THREAD_PREFIX)]
    context = {
        **admin.site.each_context(request),
        "title": "Delivery queue (embedded, no Redis)",
        "counts": spool_counts(),
        "in_memory": len(queue.embedded),
        "threads": sorted(t.name for t in threads if t.name != SWEEPER_THREAD_NAME),
        "sweeper": any(t.name == SWEEPER_THREAD_NAME for t in threads),
        "sweep_interval": settings.MAILHOST_SWEEP_INTERVAL,
    }
    return TemplateResponse(request, "admin/delivery/embedded_queue.html", context)
