import sys

from django.core.management.base import BaseCommand

from delivery.dnsrecords import Status, check_records

from ._dnsargs import add_arguments, records


class Command(BaseCommand):
    help = (
        "Look up every record `dnsrecords` prints (through MAILHOST_DNS_SERVERS) and print"
        " one line per record: ok, missing, wrong (found: ...); exit status 0 only when all"
        " are right."
    )

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **options):
        checks = check_records(records(options))
        for check in checks:
            self.stdout.write(check.line)
        bad = [c for c in checks if c.status is not Status.OK]
        if bad:
            self.stderr.write(f"{len(bad)} of {len(checks)} records are not right")
            sys.exit(1)
