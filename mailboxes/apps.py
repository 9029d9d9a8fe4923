from django.apps import AppConfig


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Mail domains and mailboxes"

    def ready(self) -> None:
        from mailhost.dbcursor import install_connection_proxy, install_connection_storage
        from mailhost.settingsreads import install_settings_reads

        install_connection_storage()
        install_connection_proxy()
        install_settings_reads()
