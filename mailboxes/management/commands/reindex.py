from django.core.management.base import BaseCommand

from mailboxes import fulltext


class Command(BaseCommand):
    help = (
        "Rebuild the full-text search index (mailboxes/fulltext.py) from the stored messages."
        " Runs beside a live server: until a message is indexed again, searches read its bytes."
    )

    def handle(self, *args, **options):
        count = fulltext.reindex()
        self.stdout.write(f"indexed {count} message text(s)")
