from django.apps import AppConfig


class Pop3Config(AppConfig):
    name = "protocols.pop3"
    label = "pop3"
    verbose_name = "POP3"
    default_auto_field = "django.db.models.BigAutoField"
