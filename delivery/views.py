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
from django.http import Http404, HttpRequest, HttpResponse
from django.http.request import split_domain_port
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


MTA_STS_HOST_PREFIX = "mta-sts."  # RFC 8461 3.3: the policy host is mta-sts.<domain>


def mta_sts_policy(request: HttpRequest) -> HttpResponse:
    """The MTA-STS policy of the hosted domain whose mta-sts. name was asked for; 404 for
    any other host, so that no policy is claimed for a domain that is not ours."""
    from delivery.dnsrecords import mta_sts_policy as policy
    from mailboxes.selectors import domain_is_hosted

    host, _port = split_domain_port(request.get_host())
    host = host.rstrip(".")
    domain = host.removeprefix(MTA_STS_HOST_PREFIX)
    if domain == host or not domain_is_hosted(domain):
        raise Http404("no MTA-STS policy for this host")
    # RFC 8461 3.3: media type text/plain.
    return HttpResponse(policy(), content_type="text/plain; charset=utf-8")
