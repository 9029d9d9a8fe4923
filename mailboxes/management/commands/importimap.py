import imaplib
import sys

from django.core.management.base import BaseCommand, CommandError

from mailboxes import imapimport, selectors
from mailboxes.exceptions import MailhostError


class Command(BaseCommand):
    stealth_options = ("stdin",)
    help = (
        "Copy every folder of another IMAP server's account (imaps://USER@HOST[:PORT], or "
        "imap:// with STARTTLS; the password read from stdin) into a mailbox with flags, "
        "keywords and internal dates; messages already copied are skipped, so it resumes."
    )

    def add_arguments(self, parser):
        parser.add_argument("address")
        parser.add_argument("--source", required=True, help="imaps://USER@HOST[:PORT]")
        parser.add_argument("--cafile", help="CA certificate(s) to verify the source with")
        parser.add_argument(
            "--insecure", action="store_true", help="do not verify the source's certificate"
        )

    def handle(self, *args, **options):
        mailbox = selectors.mailbox_get(options["address"], active_only=False)
        if mailbox is None:
            raise CommandError(f"no mailbox {options['address']}")
        stdin = options.get("stdin") or sys.stdin
        password = stdin.readline().rstrip("\r\n")
        try:
            source = imapimport.parse_source(options["source"])
            context = imapimport.tls_context(cafile=options["cafile"], insecure=options["insecure"])
            result = imapimport.mailbox_import_imap(
                mailbox=mailbox, source=source, password=password, context=context
            )
        except (MailhostError, OSError, imaplib.IMAP4.error) as exc:
            raise CommandError(f"importimap: {exc}") from None
        self.stdout.write(
            f"copied {result.imported} message(s), skipped {result.skipped} already present,"
            f" created {result.folders_created} folder(s)"
        )
