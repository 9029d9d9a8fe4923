from mailhost import runner


class Command(runner.ServerCommand):
    help = "Run the ManageSieve listener (RFC 5804, MAILHOST_MANAGESIEVE_PORT)."

    def handle(self, *args, **options):
        runner.run((runner.MANAGESIEVE,))
