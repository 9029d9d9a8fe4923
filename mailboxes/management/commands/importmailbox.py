from django.core.management.base import BaseCommand, CommandError

from mailboxes import selectors, services
from mailboxes.exceptions import MailhostError


class Command(BaseCommand):
    help = (
        "Import an mbox file, a directory of mbox files or a Maildir++ tree (detected) into a "
        "mailbox, with flags, keywords and internal dates; messages already there are skipped."
    )

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument("path")

    def handle(self, *args, **options):
        mailbox = selectors.mailbox_get(options["address"], active_only=False)
        if mailbox is None:
            raise CommandError(f"no mailbox {options['address']}")
        try:
            result = services.mailbox_import(mailbox=mailbox, path=options["path"])
        except (MailhostError, OSError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"imported {result.imported} message(s), skipped {result.skipped} already present,"
            f" created {result.folders_created} folder(s)"
        )
