"""Periodic platform jobs: beat's heartbeat and the daily prune."""

import logging

from celery import shared_task
from django.conf import settings

from . import health, operations

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def beat_heartbeat() -> None:
    """Every few seconds: proves beat schedules and a worker runs what it scheduled."""
    health.record_beat_heartbeat()


@shared_task(acks_late=True, ignore_result=True)
def prune_old_records() -> dict[str, int]:
    """Daily: delete attempts and finished messages past RETENTION_DAYS, and expired idempotency keys."""
    deleted = operations.prune(days=settings.RETENTION_DAYS)
    logger.info(
        "Pruned %s.",
        ", ".join(f"{n} {model}" for model, n in deleted.items()) or "nothing",
        extra={"deleted": dict(deleted)},
    )
    return dict(deleted)
