from django.core.management.base import BaseCommand, CommandError

from mailboxes import services


class Command(BaseCommand):
    help = (
        "Remove blobs no message or spool entry uses, and files left by writes that never "
        "committed, once older than --age seconds (default MAILHOST_BLOB_ORPHAN_AGE)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--age", type=int, default=None, help="Minimum age in seconds.")

    def handle(self, *args, **options):
        if options["age"] is not None and options["age"] < 0:
            raise CommandError("--age must not be negative")
        rows, files = services.blob_collect_garbage(orphan_age=options["age"])
        self.stdout.write(f"removed {rows} unused blob(s) and {files} orphan file(s)")
