import sys

from django.core.management.base import BaseCommand, CommandError

from mailboxes import services
from mailboxes.exceptions import MailhostError
from mailboxes.sizes import parse_size


class Command(BaseCommand):
    help = "Create a mailbox; the password is read from standard input."

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of standard input (required).",
        )
        parser.add_argument(
            "--quota",
            default=None,
            help="Quota: bytes, or 500M, 2G, 1.5GB (binary units); 0 or unlimited: none.",
        )
        parser.add_argument(
            "--quota-messages",
            type=int,
            default=None,
            metavar="N",
            help="Most messages the mailbox holds in all its folders; 0: no limit.",
        )

    def handle(self, *args, **options):
        # Checked here rather than by argparse, so that it fails like every other bad input:
        # one line, exit status 1. A password is never accepted on the command line.
        if not options["password_stdin"]:
            raise CommandError("give the password on standard input with --password-stdin")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise CommandError("no password on standard input")
        quota = None
        if options["quota"] is not None:
            try:
                quota = parse_size(options["quota"])
            except ValueError as exc:
                raise CommandError(f"--quota: {exc}") from None
        if options["quota_messages"] is not None and options["quota_messages"] < 0:
            raise CommandError("--quota-messages: must not be negative")
        try:
            mailbox = services.mailbox_create(
                address=options["address"],
                password=password,
                quota=quota,
                quota_messages=options["quota_messages"],
                check_password_strength=True,
            )
        except MailhostError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"mailbox {mailbox.address} created")
