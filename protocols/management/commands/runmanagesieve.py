from django.core.management.base import BaseCommand

from mailhost import runner


class Command(BaseCommand):
    help = "Run the ManageSieve listener (RFC 5804, MAILHOST_MANAGESIEVE_PORT)."

    def handle(self, *args, **options):
        runner.run((runner.MANAGESIEVE,))
