import sys

from django.core.management.base import BaseCommand, CommandError

from mailboxes import services
from mailboxes.exceptions import MailhostError


class Command(BaseCommand):
    help = "Create a mailbox; the password is read from standard input."

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of standard input (required).",
        )
        parser.add_argument("--quota", type=int, default=None, help="Quota in bytes (0: none).")

    def handle(self, *args, **options):
        # Checked here rather than by argparse, so that it fails like every other bad input:
        # one line, exit status 1. A password is never accepted on the command line.
        if not options["password_stdin"]:
            raise CommandError("give the password on standard input with --password-stdin")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("no password on standard input")
        if options["quota"] is not None and options["quota"] < 0:
            raise CommandError("quota must not be negative")
        try:
            mailbox = services.mailbox_create(
                address=options["address"], password=password, quota=options["quota"]
            )
        except MailhostError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"mailbox {mailbox.address} created")
