from mailhost import runner


class Command(runner.ServerCommand):
    help = "Run the POP3 listeners."

    def handle(self, *args, **options):
        runner.run((runner.POP3,))
