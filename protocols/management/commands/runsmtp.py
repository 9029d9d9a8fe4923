from mailhost import runner


class Command(runner.ServerCommand):
    help = "Run the SMTP listeners."

    def handle(self, *args, **options):
        runner.run((runner.SMTP,))
