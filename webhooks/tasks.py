"""Celery tasks: thin, idempotent shells over webhooks.delivery."""

from celery import shared_task

from . import alerts
from . import delivery as domain
from .models import Endpoint

DRAIN_LIMIT = 1000


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_endpoint(endpoint_id: int) -> None:
    """Send the endpoint's due deliveries, keeping its in-flight slots busy, until none is due.

    Enqueued once per endpoint when a transaction that wrote deliveries commits. Bounded, so one
    task cannot hold a worker forever: the sweeper or the next commit picks up the rest.
    """
    domain.drain_endpoint(endpoint_id, limit=DRAIN_LIMIT)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_endpoints(endpoint_ids: list[int]) -> None:
    """One commit's deliveries to several endpoints: a batch for each, sent together.

    An endpoint with more due than one batch gets a deliver_endpoint task of its own, so a slow
    or busy endpoint never holds up the others.
    """
    domain.deliver_round(endpoint_ids)


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_webhook(delivery_id: int) -> None:
    """Attempt one delivery if it is still due and no other worker holds it, then drain its endpoint."""
    claimed = domain.claim(delivery_id)
    if claimed is None:
        return  # final, not due yet, or being sent by another worker
    if not domain.endpoint_has_room(claimed):
        domain.release(claimed)  # the endpoint is busy: the slot's holder sends it next
        return
    domain.attempt_batch([claimed])
    domain.drain_endpoint(claimed.endpoint_id, limit=DRAIN_LIMIT)


@shared_task(acks_late=True, ignore_result=True)
def sweep_webhook_deliveries() -> int:
    """Every few seconds: send what is due and was never enqueued, or is due for a retry."""
    return domain.deliver_due()


@shared_task(acks_late=True, ignore_result=True)
def notify_endpoint_disabled(endpoint_id: int) -> None:
    """Email the organization's administrators that an endpoint was disabled."""
    endpoint = Endpoint.objects.select_related("organization").filter(pk=endpoint_id).first()
    if endpoint is not None:
        alerts.email_endpoint_disabled(endpoint)
