from django.core.management.base import BaseCommand, CommandError

from mailboxes import services
from mailboxes.exceptions import MailhostError


class Command(BaseCommand):
    help = "Host a mail domain (creates its DKIM key)."

    def add_arguments(self, parser):
        parser.add_argument("name")

    def handle(self, *args, **options):
        try:
            domain = services.domain_create(name=options["name"])
        except MailhostError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"domain {domain.name} created")
