from django.core.management.base import BaseCommand, CommandError

from mailboxes import archive, selectors
from mailboxes.exceptions import MailhostError


class Command(BaseCommand):
    help = (
        "Write every folder of a mailbox, with flags, keywords and internal dates, to DIR as "
        "mbox files (one a folder) or a Maildir++ tree."
    )

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument("directory")
        parser.add_argument("--format", choices=["mbox", "maildir"], required=True)

    def handle(self, *args, **options):
        mailbox = selectors.mailbox_get(options["address"], active_only=False)
        if mailbox is None:
            raise CommandError(f"no mailbox {options['address']}")
        try:
            result = archive.mailbox_export(
                mailbox=mailbox, fmt=options["format"], directory=options["directory"]
            )
        except (MailhostError, OSError) as exc:
            raise CommandError(str(exc)) from None
        for warning in result.warnings:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(
            f"exported {result.messages} message(s) in {result.folders} folder(s)"
            f" to {options['directory']}"
        )
