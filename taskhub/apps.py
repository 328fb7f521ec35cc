from django.apps import AppConfig


class TaskhubConfig(AppConfig):
    name = "taskhub"
    verbose_name = "Platform"

    def ready(self) -> None:
        from . import schema  # noqa: F401 - registers the OpenAPI bearer scheme
