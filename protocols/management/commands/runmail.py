from django.core.management import call_command

from mailhost import runner
from mailhost.config import require_server_name


class Command(runner.ServerCommand):
    help = (
        "Run everything in one process: SMTP, IMAP, POP3, ManageSieve, the web app and"
        " delivery workers."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-migrate", action="store_true", help="Do not apply migrations at start."
        )

    def handle(self, *args, **options):
        require_server_name()  # before migrating a fresh data dir, not after
        if not options["no_migrate"]:
            # In a child: the migration graph stays out of the workers' image (as the checks).
            runner.apart(lambda: call_command("migrate", interactive=False, verbosity=0))
        runner.run(runner.ALL, skip_missing=True)
