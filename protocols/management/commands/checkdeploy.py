import sys

from django.core.management.base import BaseCommand

from mailhost.deploycheck import CHECKS, Status, run_checks


class Command(BaseCommand):
    help = (
        "Check the mail settings for production (hostname, TLS, open relay, data dir modes,"
        " listener ports): one line per check, ok/warn/fail with what to do; exit status 1"
        " when any fails."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--skip",
            action="append",
            default=[],
            choices=sorted(CHECKS),
            help="leave a check out (repeatable), e.g. ports on a host that runs no listener",
        )

    def handle(self, *args, **options):
        results = run_checks(skip=tuple(options["skip"]))
        for result in results:
            self.stdout.write(result.line)
        failed = [r for r in results if r.status is Status.FAIL]
        if failed:
            self.stderr.write(f"{len(failed)} of {len(results)} checks failed")
            sys.exit(1)
