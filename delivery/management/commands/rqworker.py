"""`manage.py rqworker` without REDIS_URL. With it, django-rq is an installed app and its own
rqworker command (listed before this app) runs delivery/rqworker.py's MailhostWorker; without
it, django-rq is not loaded at all (mailhost/settings.py), and this one says why it cannot run
rather than take 127.0.0.1:6379, whoever's Redis that is."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand

from delivery.worker import NO_REDIS
from mailhost.config import require_server_name


class Command(BaseCommand):
    help = "Run an RQ delivery worker (django-rq's command; needs REDIS_URL)."

    def run_from_argv(self, argv: list[str]) -> None:
        # django-rq's options (--burst, queue names, ...) are accepted as its command takes
        # them: none matters, the answer is the same.
        self.handle()

    def handle(self, *args, **options) -> None:
        require_server_name()  # rqworker sends mail under MAILHOST_HOSTNAME: said first
        raise ImproperlyConfigured(NO_REDIS)
