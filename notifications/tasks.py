"""Celery tasks: thin, idempotent shells over notifications.sending and notifications.reminders."""

from celery import shared_task

from . import reminders, sending


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def send_notification(notification_id: int) -> None:
    """Send one notification if it is still due and no other worker holds it."""
    sending.attempt_all(sending.claim_all([notification_id]))


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def send_notifications(notification_ids: list[int]) -> None:
    """Send the notifications one change planned, each if it is still due and no other worker holds it."""
    sending.attempt_all(sending.claim_all(notification_ids))


@shared_task(acks_late=True, ignore_result=True)
def sweep_notifications() -> int:
    """Every few seconds: send what is due and was never enqueued, was held, or is due for a retry."""
    return sending.send_due()


@shared_task(acks_late=True, ignore_result=True)
def plan_reminders() -> int:
    """Every minute: remind the people of tasks whose reminder time has come."""
    return reminders.plan_due_reminders()


@shared_task(acks_late=True, ignore_result=True)
def plan_digests() -> int:
    """Every few minutes: the day-before digest of each organization whose digest hour has come."""
    return reminders.plan_due_digests()
