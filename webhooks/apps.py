from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - configuration changes renew the organization's stamp
