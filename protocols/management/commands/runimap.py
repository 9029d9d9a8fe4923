from django.core.management.base import BaseCommand

from mailhost import runner


class Command(BaseCommand):
    help = "Run the IMAP listeners."

    def handle(self, *args, **options):
        runner.run((runner.IMAP,))
