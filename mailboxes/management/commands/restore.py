from pathlib import Path

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from mailboxes.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a `manage.py backup` DIR into the configured database and blob store (server "
        "stopped), then migrate and verifystore (exit status 1 if the store has problems)."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)

    def handle(self, *args, **options):
        try:
            lines = backup_restore(options["directory"])
        except BackupError as exc:
            raise CommandError(str(exc)) from None
        for line in lines:
            self.stdout.write(line)
        # A backup from an older version gets this version's schema before the check.
        call_command("migrate", verbosity=0)
        call_command("verifystore", stdout=self.stdout, stderr=self.stderr)
