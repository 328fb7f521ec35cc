from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from . import signals  # noqa: F401 - configuration changes renew the organization's stamp
