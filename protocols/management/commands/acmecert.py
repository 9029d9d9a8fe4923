from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Issue or renew the ACME certificates (MAILHOST_HOSTNAME's and each hosted domain's) now"
        " (MAILHOST_ACME_DIRECTORY), when there is none or it expires within"
        " MAILHOST_ACME_RENEW_DAYS. runmail must be running: its web port (http-01) or HTTPS port"
        " (tls-alpn-01) answers the challenge. Send runmail SIGHUP afterwards (it also picks the"
        " new certificates up at its next check)."
    )

    def handle(self, *args, **options):
        from mailhost import acme

        if not settings.MAILHOST_ACME_DIRECTORY:
            raise CommandError("MAILHOST_ACME_DIRECTORY is not set")
        try:
            issued = acme.ensure()
        except Exception as exc:
            raise CommandError(f"acme failed: {exc}") from None
        for cert, _ in acme.domain_certificate_files():
            self.stdout.write(f"domain certificate: {cert}")
        cert, _ = acme.certificate_files()
        self.stdout.write(f"{'issued' if issued else 'still valid'}: {cert}")
