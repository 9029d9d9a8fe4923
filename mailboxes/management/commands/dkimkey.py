from django.core.management.base import BaseCommand, CommandError

from mailboxes import selectors, services
from mailboxes.exceptions import MailhostError
from mailboxes.models import DkimKey


class Command(BaseCommand):
    help = (
        "DKIM key rotation for DOMAIN: --new makes a key (RSA, or --ed25519) that is published"
        " but does not sign yet; once DNS serves its record, --activate SELECTOR signs with it"
        " (the previous key stays published); --retire SELECTOR drops an old key. Without an"
        " option: list the keys."
    )

    def add_arguments(self, parser):
        parser.add_argument("domain")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--new", action="store_true", help="create a new key (published)")
        action.add_argument("--activate", metavar="SELECTOR", help="sign with this key")
        action.add_argument("--retire", metavar="SELECTOR", help="unpublish this key")
        parser.add_argument("--ed25519", action="store_true", help="with --new: RFC 8463 key")
        parser.add_argument("--selector", help="with --new: its selector (default mhYYYYMMDD)")

    def handle(self, *args, **options):
        domain = selectors.domain_get(options["domain"])
        if domain is None:
            raise CommandError(f"no domain {options['domain']}")
        if (options["ed25519"] or options["selector"]) and not options["new"]:
            raise CommandError("--ed25519 and --selector go with --new")
        try:
            if options["new"]:
                algorithm = (
                    DkimKey.Algorithm.ED25519 if options["ed25519"] else DkimKey.Algorithm.RSA
                )
                key = services.dkim_key_create(
                    domain=domain, algorithm=algorithm, selector=options["selector"]
                )
                self.stdout.write(
                    f"{key.selector}: new {key.algorithm} key, published, not signing; publish"
                    f" its record (manage.py dnsrecords {domain.name}), then"
                    f" manage.py dkimkey {domain.name} --activate {key.selector}"
                )
            elif options["activate"]:
                key = services.dkim_key_activate(domain=domain, selector=options["activate"])
                self.stdout.write(f"{key.selector}: active, signs mail of {domain.name}")
            elif options["retire"]:
                key = services.dkim_key_retire(domain=domain, selector=options["retire"])
                self.stdout.write(
                    f"{key.selector}: retired; remove its record"
                    f" {key.selector}._domainkey.{domain.name} from DNS"
                )
        except MailhostError as exc:
            raise CommandError(str(exc)) from None
        for key in selectors.domain_dkim_keys(domain):
            self.stdout.write(f"{key.selector} {key.algorithm} {key.state}")
