"""Webhook events about tasks: the payloads the task services hand to the outbox."""

from typing import Any

from notifications import services as notifications
from taskhub.configcache import StampedCache
from webhooks.services import emit, emit_many, enabled_endpoints

from .models import Rating, Task, TaskStatus

SCHEDULE_FIELDS = frozenset({"start_datetime", "end_datetime", "time_window_start", "unscheduled", "due_datetime"})


def task_data(task: Task, **extra: Any) -> dict[str, Any]:
    """The task as every task.* event carries it (the REST representation, plus the event's own keys)."""
    from .serializers import TaskOutSerializer  # serializers import models; keep this module light

    return {**TaskOutSerializer(task).data, **extra}


def _emit(task: Task, type_: str, request_id: str | None = None, *, send: bool = True, **extra) -> None:
    if not send:  # do_not_send_webhook_notification: no webhook for this change; messages still go
        return
    if request_id:
        extra["request_id"] = request_id
    emit(organization=task.organization, type=type_, data=lambda: {**task_data(task), **extra}, task=task,
         request_id=request_id, endpoints=endpoints_for(task))  # fmt: skip


class Batch:
    """The events of one change: the task serialized once for all of them, and all written together."""

    def __init__(self, task: Task, request_id: str | None) -> None:
        self.task, self.request_id = task, request_id
        self.events: list[tuple[str, Any]] = []
        self._data: dict[str, Any] | None = None

    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = task_data(self.task)
        return self._data

    def add(self, type_: str, **extra: Any) -> None:
        if self.request_id:
            extra["request_id"] = self.request_id
        self.events.append((type_, lambda: {**self.data(), **extra}))

    def emit(self) -> None:
        emit_many(organization=self.task.organization, events=self.events, task=self.task, request_id=self.request_id,
                  endpoints=endpoints_for(self.task))  # fmt: skip

    @property
    def representation(self) -> dict[str, Any] | None:
        """The task as the events carry it, when an endpoint wanted one (else None): built once."""
        return self._data


# Read by every change of every task: kept per process until the organization's configuration changes.
_endpoints = StampedCache(lambda organization: tuple(enabled_endpoints(organization)))


def endpoints_for(task: Task) -> tuple:
    """The organization's enabled endpoints (shared: not to be modified), once per task instance: a
    request that changes a task and then reports on it (Travtus's request.completed) asks twice."""
    endpoints = task.__dict__.get("_enabled_endpoints")
    if endpoints is None:
        endpoints = task.__dict__["_enabled_endpoints"] = _endpoints.get(task.organization)
    return endpoints


def task_changed(
    task: Task,
    *,
    created: bool,
    changed: list[str],
    crew_added: set[int],
    crew_removed: set[int],
    request_id: str | None = None,
    send_webhooks: bool = True,
) -> dict[str, Any] | None:
    """The change's events and messages. Returns the task as its events carry it, when an endpoint
    wanted it: the REST representation of the task as it now is, so a response need not build it again."""
    send = send_webhooks
    messages: list[tuple[str, set[int] | None]] = []  # planned together, after the webhooks
    batch = Batch(task, request_id)
    if created:
        batch.add("task.created")
        if send:
            batch.emit()
        messages.append(("created", None))
        if crew_added:
            messages.append(("assigned", crew_added))
        notifications.plan_change(task, messages)
        return batch.representation
    batch.add("task.updated", changed=sorted(changed))
    if SCHEDULE_FIELDS.intersection(changed):
        batch.add("task.rescheduled")
        messages.append(("rescheduled", None))
    if crew_added:
        batch.add("task.assigned", entity_ids_added=sorted(crew_added))
        messages.append(("assigned", crew_added))
    if crew_removed:
        batch.add("task.unassigned", entity_ids_removed=sorted(crew_removed))
    if send:  # do_not_send_webhook_notification: no webhook for this change; messages still go
        batch.emit()
    if messages:
        notifications.plan_change(task, messages)
    return batch.representation


def status_reported(task: Task, entry: TaskStatus, request_id: str | None = None, send_webhooks: bool = True) -> None:
    _emit(
        task,
        "task.status_changed",
        request_id,
        send=send_webhooks,
        status_entry={
            "id": entry.pk,
            "type": entry.type,
            "time": entry.time.isoformat(),
            "source": entry.source,
            "notes": entry.notes,
            "reporter_name": entry.reporter_name,
            "visible_to_customer": entry.visible_to_customer,
        },
    )
    notifications.plan(task=task, event=f"status:{entry.type}", occurrence=f"s{entry.pk}")


def task_late(task: Task, eta, window_end, request_id: str | None = None, send_webhooks: bool = True) -> None:
    """task.late: the expected arrival reported on the way falls after the promised window."""
    _emit(task, "task.late", request_id, send=send_webhooks, expected_arrival=eta.isoformat(),
          window_end=window_end.isoformat())  # fmt: skip


def customer_message(task: Task, entry: TaskStatus) -> None:
    _emit(
        task,
        "task.customer_message",
        message={"id": entry.pk, "text": entry.notes, "source": entry.source, "time": entry.time.isoformat()},
    )


def task_rated(task: Task, rating: Rating) -> None:
    _emit(task, "task.rated", rating={"score": rating.score, "text": rating.text,
                                      "created_at": rating.created_at.isoformat()})  # fmt: skip


def task_deleted(task: Task, request_id: str | None = None, send_webhooks: bool = True) -> None:
    _emit(task, "task.deleted", request_id, send=send_webhooks)
    notifications.withdraw(task=task)


def request_finished(
    organization, *, request_id: str, ok: bool, task: Task | None, route: str, errors: dict | None = None
) -> None:
    """request.completed / request.failed, carrying the Travtus-style request_id."""
    data: dict[str, Any] = {"request_id": request_id, "route": route}
    if task is not None:
        data.update(identifier=str(task.identifier), external_id=task.external_id, version=task.version,
                    extra_fields=task.extra_fields)  # fmt: skip
    if errors:
        data["errors"] = errors
    emit(organization=organization, type="request.completed" if ok else "request.failed", data=data, task=task,
         request_id=request_id, endpoints=endpoints_for(task) if task is not None else None)  # fmt: skip
