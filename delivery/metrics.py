"""The spool's gauges on /metrics (mailhost.metrics serves the scrape; README "Metrics and
health" lists every metric)."""

from __future__ import annotations

import logging

from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily

from delivery import selectors

logger = logging.getLogger("mailhost.metrics")


class QueueCollector:
    """The spool's depth and the age of its oldest pending message, read at scrape time."""

    def describe(self):  # registration must not touch the database (no query at import)
        return self._families()

    def _families(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "mailhost_queue_messages", "Spooled messages with a pending recipient"
            ),
            GaugeMetricFamily(
                "mailhost_queue_recipients", "Recipients queued or deferred in the spool"
            ),
            GaugeMetricFamily(
                "mailhost_queue_oldest_age_seconds",
                "Age of the oldest message with a pending recipient (0: empty queue)",
            ),
        ]

    def collect(self):
        try:
            summary = selectors.queue_summary()
        except Exception:  # the counters still go out; /healthz names the database
            logger.warning("metrics: the spool could not be read", exc_info=True)
            return []
        messages, recipients, oldest = self._families()
        messages.add_metric([], summary.messages)
        recipients.add_metric([], summary.recipients)
        age = (timezone.now() - summary.oldest).total_seconds() if summary.oldest else 0.0
        oldest.add_metric([], max(age, 0.0))
        return [messages, recipients, oldest]


_registered = False


def register() -> None:
    """Add the spool's gauges to the scrape (DeliveryConfig.ready: the project's metrics
    module does not import the parts it serves)."""
    global _registered
    if not _registered:
        REGISTRY.register(QueueCollector())
        _registered = True
