"""Task services: every write to a task goes through here, whichever route called it."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from taskhub.errors import Conflict

from .models import Person, StatusType, Task, TaskStatus

TERMINAL = frozenset({StatusType.COMPLETE, StatusType.CANCELLED})
# After a terminal status the only way on is an explicit reopen to NOTSTARTED.
REOPEN = StatusType.NOTSTARTED


def check_transition(task: Task, new: StatusType) -> None:
    """The one place status transitions are decided; raises Conflict with the reason."""
    if task.is_deleted:
        raise Conflict("The task is deleted; its status can no longer change.", {"type": ["task is deleted"]})
    if task.status in TERMINAL and new != REOPEN:
        raise Conflict(
            f"The task is {task.status}; report {REOPEN} to reopen it before reporting {new}.",
            {"type": [f"not allowed after {task.status}"]},
        )


def lock_task(task: Task) -> Task:
    """Re-read `task` under a row lock; callers must be inside a transaction."""
    return Task.objects.select_for_update().get(pk=task.pk)


def bump_version(task: Task) -> None:
    Task.objects.filter(pk=task.pk).update(version=F("version") + 1, updated_at=timezone.now())
    task.refresh_from_db(fields=["version", "updated_at"])


@transaction.atomic
def task_report_status(
    *,
    task: Task,
    type: StatusType | str,
    source: str = TaskStatus.Source.API,
    time: datetime | None = None,
    notes: str = "",
    reporter: Person | None = None,
    reporter_name: str = "",
    visible_to_customer: bool = True,
    extra_fields: dict[str, Any] | None = None,
) -> TaskStatus:
    """Add a journal entry and move the task's current status with it."""
    new = StatusType.parse(type) if isinstance(type, str) else type
    task = lock_task(task)
    check_transition(task, new)
    entry = TaskStatus.objects.create(
        organization_id=task.organization_id,
        task=task,
        type=new,
        time=time or timezone.now(),
        source=source,
        notes=notes,
        reporter=reporter,
        reporter_name=reporter_name or (reporter.full_name if reporter else ""),
        visible_to_customer=visible_to_customer,
        extra_fields=extra_fields or {},
    )
    changes: dict[str, Any] = {"status": new, "status_changed_at": entry.time}
    if new == StatusType.COMPLETE:
        changes["completed_datetime"] = entry.time
    elif new == REOPEN:
        changes["completed_datetime"] = None
    Task.objects.filter(pk=task.pk).update(**changes, version=F("version") + 1, updated_at=timezone.now())
    return entry


@transaction.atomic
def task_assign(*, task: Task, crew: Iterable[Person], replace: bool = False) -> list[Person]:
    """Assign crew to a task (added to those already assigned unless `replace`); returns the new ones."""
    task = lock_task(task)
    crew = [person for person in crew if person.organization_id == task.organization_id]
    current = set(task.assignees.values_list("pk", flat=True))
    added = [person for person in crew if person.pk not in current]
    if replace:
        task.assignees.set(crew)
    else:
        task.assignees.add(*added)
    if added or (replace and current != {p.pk for p in crew}):
        bump_version(task)
    return added


@transaction.atomic
def task_delete(*, task: Task) -> Task:
    """Soft-delete: the task leaves lists but its journal and history stay."""
    task = lock_task(task)
    if not task.is_deleted:
        task.deleted_at = timezone.now()
        task.save(update_fields=["deleted_at"])
        bump_version(task)
    return task
