from django.core.management.base import BaseCommand, CommandError

from mailboxes import services
from mailboxes.exceptions import MailhostError
from mailboxes.selectors import destinations_undeliverable


class Command(BaseCommand):
    help = "Create an alias (`*@domain` for a catch-all) delivering to one or more addresses."

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument("destinations", nargs="+")

    def handle(self, *args, **options):
        try:
            alias = services.alias_create(
                address=options["address"], destinations=options["destinations"]
            )
        except MailhostError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"alias {alias.address} created")
        for address in destinations_undeliverable(alias.destination_list):
            # Created all the same: the mailbox may be made next.
            self.stderr.write(
                f"warning: {address} is not a mailbox or alias here (yet): mail to"
                f" {alias.address} for it bounces until it is created"
            )
