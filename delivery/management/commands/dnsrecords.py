from django.conf import settings
from django.core.management.base import BaseCommand

from delivery import dnsrecords

from ._dnsargs import add_arguments, records


class Command(BaseCommand):
    help = "Print, in zone-file syntax, every DNS record to publish for a hosted domain."

    def add_arguments(self, parser):
        add_arguments(parser)

    def handle(self, *args, **options):
        rows = records(options)
        domain = rows[0].name
        self.stdout.write(f"; DNS records for {domain}, served by {settings.MAILHOST_HOSTNAME}")
        for record in rows:
            self.stdout.write(record.zone_line)
        self.stdout.write(
            f"; https://mta-sts.{domain}/.well-known/mta-sts.txt serves the MTA-STS policy"
            f" (mode {settings.MAILHOST_MTA_STS_MODE}); reports go to"
            f" {dnsrecords.DMARC_RUA_LOCAL_PART}@{domain} and"
            f" {dnsrecords.TLSRPT_RUA_LOCAL_PART}@{domain}: make them mailboxes or aliases"
        )
