"""Celery application: the distributed engine for webhook delivery, notifications and sweeps."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

from . import logs  # noqa: F401 - carries request ids from publishers into the tasks they cause

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")

app = Celery("taskhub")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@task_prerun.connect(dispatch_uid="taskhub.celery.connections.prerun")
@task_postrun.connect(dispatch_uid="taskhub.celery.connections.postrun")
def recycle_old_connections(task=None, **kwargs) -> None:
    """A task's database connections live as a request's do: kept for CONN_MAX_AGE, closed when broken.

    Django does this around each request; Celery's own fix-up, which closed them around every task
    (a new PostgreSQL backend each time), is held off by CELERY_DB_REUSE_MAX in the settings. A task
    run eagerly runs inside its caller's connection and transaction, and is left alone.
    """
    if task is not None and not task.request.is_eager:
        close_old_connections()
