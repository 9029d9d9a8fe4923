"""Prometheus metrics (`/metrics`), with prometheus-client's default registry.

Each counter moves at the point that already logs the event, one call there: the listeners
(connections, IMAP sessions), the SMTP acceptance and reject lines, mailboxes.throttle's
`auth success|failure|throttled` lines, delivery's outcome lines. The queue's depth and age
are read from the spool when scraped (delivery/metrics.py, registered by the delivery app
when it is ready: this module imports no part), so every process reports the same truth.

The counters live in the process that serves the scrape: under runmail with
MAILHOST_PROCESSES=1 (one process: the listeners, the workers and the web app) that is all of
them; with several worker processes the web app in worker 0 counts worker 0's connections,
logins and acceptances only. Those, and front ends split over several processes (runsmtp,
runimap, gunicorn, rqworker), would need prometheus-client's multiprocess
mode (PROMETHEUS_MULTIPROC_DIR) or a scrape of each process; that is left to the scale-out
work, and the queue gauges are right from any process in any case.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mailhost.proxy import client_address

CONNECTIONS = Counter(
    "mailhost_connections",
    "Connections accepted past the connection limits, by listener",
    ["protocol"],
)
IMAP_SESSIONS = Gauge("mailhost_imap_sessions", "IMAP connections open now")
SMTP_ACCEPTED = Counter(
    "mailhost_smtp_accepted", "SMTP transactions answered 250 after DATA/BDAT", ["protocol"]
)
SMTP_REJECTIONS = Counter(
    "mailhost_smtp_rejections",
    "SMTP replies 4xx/5xx (AUTH's 535 is a login failure), by reply name and code",
    ["reason", "code"],
)
# From the end of the message data (the final dot or BDAT LAST chunk) to the 250: the time a
# client waits while the message is stored, synced and committed.
SMTP_ACCEPT_SECONDS = Histogram(
    "mailhost_smtp_accept_seconds",
    "Seconds from the end of message data to the 250 reply",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELIVERIES = Counter(
    "mailhost_deliveries",
    "Outbound recipient outcomes: delivered, deferred, bounced, expired",
    ["result"],
)
SIEVE_ACTIONS = Counter(
    "mailhost_sieve_actions",
    "What Sieve scripts did at delivery, per mailbox: fileinto, keep, redirect, vacation, "
    "reject, ereject, notify, discard; error when a script failed (implicit keep)",
    ["action"],
)
LOGINS = Counter(
    "mailhost_logins",
    "Password logins by protocol and result: success, failure, throttled",
    ["protocol", "result"],
)

# Each metric's child per label values, as labels() gave it: labels() checks and sorts the
# names, makes the values text and takes a lock at every call (12 of its 15.6 us with inc()),
# and a message moves two or three counters. The label values are few (protocols, results,
# reply names).
_children: dict[tuple[Counter, tuple[str, ...]], Counter] = {}


def _child(metric: Counter, *values: str) -> Counter:
    """metric.labels(*values), values in the order of its label names."""
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def connection_opened(protocol: str) -> None:
    _child(CONNECTIONS, protocol).inc()


def smtp_accepted(*, protocol: str, seconds: float) -> None:
    _child(SMTP_ACCEPTED, protocol).inc()
    SMTP_ACCEPT_SECONDS.observe(seconds)


def smtp_rejected(*, reason: str, code: int) -> None:
    _child(SMTP_REJECTIONS, reason, str(code)).inc()


def delivery_result(result: str) -> None:
    _child(DELIVERIES, result).inc()


def sieve_actions(actions: list[str]) -> None:
    for action in actions:
        _child(SIEVE_ACTIONS, action).inc()


def login(*, protocol: str, result: str) -> None:
    _child(LOGINS, protocol, result).inc()


def allowed(request: HttpRequest) -> bool:
    """Whether the client (mailhost.proxy.client_address) is in MAILHOST_METRICS_ALLOW."""
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in network for network in settings.MAILHOST_METRICS_ALLOW)


def scrape(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
