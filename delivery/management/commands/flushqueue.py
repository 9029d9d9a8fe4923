from django.conf import settings
from django.core.management.base import BaseCommand

from delivery import selectors, services


class Command(BaseCommand):
    help = (
        "Try every queued and deferred recipient now, as the admin's Retry now does: even"
        " addresses that could not be reached moments ago are connected to."
    )

    def handle(self, *args, **options):
        ids = [r.id for r in selectors.pending_recipients()]
        count = services.recipients_retry_now(recipient_ids=ids) if ids else 0
        self.stdout.write(f"{count} recipient(s) will be tried now.")
        if count and not settings.REDIS_URL:
            # The embedded queue lives in the running server's process, not in this one.
            self.stdout.write(
                f"The running server's sweeper takes them within"
                f" {settings.MAILHOST_SWEEP_INTERVAL:g} s (MAILHOST_SWEEP_INTERVAL)."
            )
