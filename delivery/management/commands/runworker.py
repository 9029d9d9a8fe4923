from django.core.management.base import BaseCommand

from mailhost import runner


class Command(BaseCommand):
    help = (
        "Run the delivery workers and the spool sweeper alone (the 'worker' family of runmail):"
        " threads taking RQ's jobs with REDIS_URL, the embedded queue without it."
    )

    def handle(self, *args, **options):
        runner.run((runner.DELIVERY,))
