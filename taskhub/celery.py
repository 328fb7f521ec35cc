"""Celery application: the distributed engine for webhook delivery, notifications and sweeps."""

import os
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections

from . import logs  # noqa: F401 - carries request ids from publishers into the tasks they cause

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")


app = Celery("taskhub", namespace="CELERY")


@app.on_configure.connect
def read_django_settings(sender: Celery, **kwargs) -> None:
    """The app's configuration: Django's `CELERY_*` settings, copied into a dict as Celery loads it.

    Celery binds to Django's settings object at that moment either way. It looks each key up in
    its source under two names before its defaults, and on the settings object every miss raised
    and caught an AttributeError: a publish reads six keys set nowhere, about a quarter of its
    CPU (0.40 -> 0.33 ms a publish, two a change). A dict answers a miss in C.
    """
    from django.conf import settings

    sender.config_from_object(celery_settings(settings), namespace="CELERY")


def celery_settings(settings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in dir(settings) if name.startswith("CELERY_")}


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
