import sys

from django.core.management.base import BaseCommand

from delivery import selectors, services


class Command(BaseCommand):
    help = (
        "Act on queued messages by queue id (as `mailq` lists them), as Postfix's postsuper"
        " does: delete (no DSN), hold (never attempted until released), release (due now),"
        " bounce (fail now, with a DSN to the sender, as the admin's Bounce now)."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["delete", "hold", "release", "bounce"])
        parser.add_argument("queue_ids", nargs="+", metavar="ID")

    def handle(self, *args, **options):
        found = selectors.outbound_by_queue_id(options["queue_ids"])
        missing = [q for q in options["queue_ids"] if q.upper() not in found]
        for queue_id in missing:
            self.stderr.write(f"{queue_id}: no such queue id")
        message_ids = [m.pk for m in found.values()]
        action = options["action"]
        if not message_ids:
            count = 0
        elif action == "delete":
            count = services.messages_delete(message_ids=message_ids)
        elif action == "hold":
            count = services.messages_hold(message_ids=message_ids)
        elif action == "release":
            count = services.messages_release(message_ids=message_ids)
        else:
            count = services.recipients_bounce_now(
                recipient_ids=selectors.recipient_ids_of(message_ids)
            )
        unit = "message(s)" if action == "delete" else "recipient(s)"
        self.stdout.write(f"{action}: {count} {unit} of {len(found)} queue id(s)")
        if missing:
            sys.exit(1)
