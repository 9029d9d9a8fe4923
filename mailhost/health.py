"""`/healthz`: 200 when the database answers a query and the blob storage takes, returns and
drops a tiny probe; 503 naming the part that failed. No sign-in, no session, no CSRF (GET and
HEAD only), for load balancers and service monitors."""

from __future__ import annotations

import logging
import uuid

from django.core.files.base import ContentFile
from django.core.files.storage import storages
from django.db import connection
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger("mailhost.health")

PROBE_DIRECTORY = "healthz"  # under the blob storage; a probe lives for one request
PROBE = b"mailhost health probe\n"


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.warning("health: the database does not answer", exc_info=True)
        return False


def storage_ok() -> bool:
    """Write, read back and delete a probe through the blob storage (files or S3)."""
    storage = storages["blobs"]
    name = f"{PROBE_DIRECTORY}/probe-{uuid.uuid4().hex}"
    try:
        saved = storage.save(name, ContentFile(PROBE))
        try:
            with storage.open(saved, "rb") as probe:
                return probe.read() == PROBE
        finally:
            storage.delete(saved)
    except Exception:
        logger.warning("health: the blob storage fails its probe", exc_info=True)
        return False


def healthz(request: HttpRequest) -> HttpResponse:
    checks = {"database": database_ok(), "storage": storage_ok()}
    failing = [part for part, ok in checks.items() if not ok]
    body = "".join(f"{part}: {'ok' if ok else 'failing'}\n" for part, ok in checks.items())
    response = HttpResponse(
        ("ok\n" if not failing else f"failing: {', '.join(failing)}\n") + body,
        content_type="text/plain; charset=utf-8",
        status=503 if failing else 200,
    )
    response["Cache-Control"] = "no-store"
    return response
