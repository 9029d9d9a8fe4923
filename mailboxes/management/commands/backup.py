from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from mailboxes.backup import BackupError, backup_write


class Command(BaseCommand):
    help = (
        "Back up a running server into DIR: the database (SQLite's online backup API, or "
        "pg_dump -Fc), then the blob files. Restore with `manage.py restore DIR`."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path, help="made if absent; must be empty")

    def handle(self, *args, **options):
        try:
            lines = backup_write(options["directory"])
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        for line in lines:
            self.stdout.write(line)
