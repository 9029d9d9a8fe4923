from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    name = "delivery"
    verbose_name = "Outbound queue"

    def ready(self) -> None:
        from delivery import metrics, outbound

        metrics.register()
        outbound.connect()
