import sys

from django.core.management.base import BaseCommand

from mailboxes import selectors


class Command(BaseCommand):
    help = (
        "Check that every blob's bytes are present (file or inline) with its recorded size, and "
        "every message's size is its blob's; one line per problem, exit status 1 if any."
    )

    def handle(self, *args, **options):
        problems = 0
        for line in selectors.store_problems():
            self.stdout.write(line)
            problems += 1
        if problems:
            self.stderr.write(f"{problems} problem(s) found")
            sys.exit(1)
        self.stdout.write("store ok")
