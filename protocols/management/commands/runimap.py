from mailhost import runner


class Command(runner.ServerCommand):
    help = "Run the IMAP listeners."

    def handle(self, *args, **options):
        runner.run((runner.IMAP,))
