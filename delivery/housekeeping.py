"""Housekeeping of the spool and the store, run by the delivery sweeper (delivery.worker):
the sweep that re-enqueues what is due, and the periodic pass that sends DSNs a crashed job
left owed, prunes finished spool entries, finishes spam training, prunes the greylist,
collects unused blobs and sends the daily aggregate reports."""

from __future__ import annotations

import logging

from delivery import outreports, queue
from delivery.services import dsn_owed_message_ids, due_message_ids, message_notify, spool_prune
from delivery.spam.services import greylist_prune, training_run
from mailboxes.services import blob_collect_garbage_if_due

logger = logging.getLogger(__name__)


def sweep() -> int:
    """Enqueue every message with due recipients that no worker holds; returns how many."""
    count = 0
    for message_id in due_message_ids():
        if queue.enqueue(message_id):
            count += 1
    return count


def housekeep() -> tuple[int, int]:
    """Send the DSNs a crashed job left owed, and remove old finished spool entries.

    Returns (messages notified, entries removed).
    """
    notified = 0
    for message_id in dsn_owed_message_ids():
        if message_notify(message_id=message_id):
            notified += 1
    pruned = spool_prune()
    # Spam training a crash left pending (the rows say what the user asked), old greylist.
    training_run()
    greylist_prune()
    # Unused blobs, and files of writes that died before committing (mailboxes owns them).
    blob_collect_garbage_if_due()
    # The daily TLS (RFC 8460) and DMARC (RFC 7489) aggregate reports, once each day ended.
    try:
        outreports.send_due()
    except Exception:
        logger.exception("aggregate reports failed; trying again at the next housekeeping")
    if notified or pruned:
        logger.info("housekeeping: %d DSN(s) sent late, %d spool entries removed", notified, pruned)
    return notified, pruned
