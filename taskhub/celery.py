"""Celery application: the distributed engine for webhook delivery, notifications and sweeps."""

import os

from celery import Celery

from . import logs  # noqa: F401 - carries request ids from publishers into the tasks they cause

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")

app = Celery("taskhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
