from django.core.management.base import BaseCommand

from mailhost import runner


class Command(BaseCommand):
    help = "Run the POP3 listeners."

    def handle(self, *args, **options):
        runner.run((runner.POP3,))
