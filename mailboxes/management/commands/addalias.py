from django.core.management.base import BaseCommand, CommandError

from mailboxes import services
from mailboxes.exceptions import MailhostError


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
