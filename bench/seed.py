"""Deterministic bench data written with COPY: an organization, people, and tasks with their rows.

Every value comes from one seeded generator, so two seeds of the same scale are identical
(tracker tokens included). Runs through Django's connection, so it works on any database the
project is configured for that speaks PostgreSQL's COPY.
"""

import base64
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import AutoField, BigAutoField, DateTimeField, JSONField, Max, Model

SEED = 7
BATCH = 20_000
GROUPS = 20
CREW_SHARE = 50  # one person in 50 is crew
EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
STATUSES = ["NOTSTARTED"] * 6 + ["CONFIRMED", "ENROUTE", "STARTED", "COMPLETE", "COMPLETE", "CANCELLED"]
FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jamal", "Kim", "Luis"]
LAST = ["Alvarez", "Brown", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jones", "Khan"]
STREETS = ["Riverside Dr", "Maple Ave", "Harbor St", "Elm St", "Broadway", "Park Pl", "Canal St"]


@dataclass
class Seeded:
    organization_id: int
    group_ids: list[int]
    crew_ids: list[int]
    customer_ids: list[int]
    first_task_id: int
    tasks: int


def token(rng: random.Random) -> str:
    """A tracker token shaped like the product's (22 URL-safe characters), but reproducible."""
    return base64.urlsafe_b64encode(rng.getrandbits(128).to_bytes(16, "big")).decode().rstrip("=")


def _fields(model: type[Model]) -> list:
    return list(model._meta.concrete_fields)


def _value(field, row: dict[str, Any], now: datetime) -> Any:
    if field.attname in row:
        value = row[field.attname]
    elif isinstance(field, DateTimeField) and (field.auto_now or field.auto_now_add):
        value = now
    else:
        value = field.get_default()
    if isinstance(field, JSONField):
        return json.dumps(value)
    return value


def copy_rows(model: type[Model], rows: Iterable[dict[str, Any]], now: datetime, *, with_id: bool = False) -> int:
    """COPY `rows` (dicts by attname; missing fields take the model's defaults) into `model`'s table."""
    fields = [f for f in _fields(model) if with_id or not isinstance(f, AutoField | BigAutoField)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    count = 0
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([_value(f, row, now) for f in fields])
            count += 1
    return count


def reset_sequence(model: type[Model]) -> None:
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence(%s, 'id'), GREATEST((SELECT MAX(id) FROM {table}), 1))", [table]
        )


def next_id(model: type[Model]) -> int:
    return (model.objects.aggregate(m=Max("id"))["m"] or 0) + 1


def _batched(rows: Iterator[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def seed(*, slug: str, persons: int, tasks: int, seed_value: int = SEED) -> Seeded:
    """Write an organization `slug` with `persons` people and `tasks` tasks (address, journal entry, crew each)."""
    from taskhub.models import Organization
    from tasks.models import Group, Person, Task, TaskAddress, TaskStatus

    rng = random.Random(seed_value)
    now = datetime.now(UTC)
    with transaction.atomic():
        org = Organization.objects.create(slug=slug, name=f"Bench {slug}", timezone="UTC")
        groups = Group.objects.bulk_create(
            [Group(organization=org, name=f"Group {n:02d}", external_ref=f"{slug}-g{n}") for n in range(GROUPS)]
        )
        first_person = next_id(Person)
        copy_rows(Person, _people(rng, org.pk, first_person, persons), now, with_id=True)
        reset_sequence(Person)
        crew = [first_person + n for n in range(persons) if n % CREW_SHARE == 0]
        customers = [first_person + n for n in range(persons) if n % CREW_SHARE != 0]
        first_task = next_id(Task)
        through = Task.assignees.through
        for batch in _batched(_tasks(rng, org.pk, [g.pk for g in groups], customers, first_task, tasks)):
            copy_rows(Task, batch, now, with_id=True)
            copy_rows(TaskAddress, (_address(rng, row["id"]) for row in batch), now)
            copy_rows(TaskStatus, (_journal(org.pk, row) for row in batch), now)
            copy_rows(through, ({"task_id": row["id"], "person_id": rng.choice(crew)} for row in batch), now)
        for model in (Task, TaskAddress, TaskStatus, through):
            reset_sequence(model)
    with connection.cursor() as cursor:  # as autovacuum would have by now: the planner needs the statistics
        for model in (Person, Task, TaskAddress, TaskStatus, Task.assignees.through):
            cursor.execute(f"ANALYZE {model._meta.db_table}")
    return Seeded(org.pk, [g.pk for g in groups], crew, customers, first_task, tasks)


def _people(rng: random.Random, org_id: int, first_id: int, count: int) -> Iterator[dict[str, Any]]:
    for n in range(count):
        is_crew = n % CREW_SHARE == 0
        yield {
            "id": first_id + n,
            "organization_id": org_id,
            "identifier": rng.getrandbits(128).to_bytes(16, "big").hex(),
            "external_ref": f"p{n}",
            "first_name": rng.choice(FIRST),
            "last_name": rng.choice(LAST),
            "email": f"person{n}@bench.test",
            "mobile_number": f"+1212555{n % 10000:04d}",
            "is_customer": not is_crew,
            "is_crew": is_crew,
        }


def _tasks(
    rng: random.Random, org_id: int, groups: list[int], customers: list[int], first_id: int, count: int
) -> Iterator[dict[str, Any]]:
    for n in range(count):
        start = EPOCH + timedelta(minutes=30 * rng.randrange(0, 24 * 2 * 120))
        status = rng.choice(STATUSES)
        yield {
            "id": first_id + n,
            "organization_id": org_id,
            "identifier": rng.getrandbits(128).to_bytes(16, "big").hex(),
            "external_id": f"ext-{n}",
            "url_safe_id": token(rng),
            "title": f"Bench task {n}",
            "details": "Replace the filter and check the pressure.",
            "start_datetime": start,
            "end_datetime": start + timedelta(hours=2),
            "group_id": rng.choice(groups),
            "customer_id": rng.choice(customers),
            "status": status,
            "status_changed_at": start,
            "completed_datetime": start + timedelta(hours=1) if status == "COMPLETE" else None,
        }


def _address(rng: random.Random, task_id: int) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "position": 0,
        "address_line_1": f"{rng.randrange(1, 999)} {rng.choice(STREETS)}",
        "city": "Springfield",
        "state": "IL",
        "country": "US",
        "zipcode": f"{rng.randrange(10000, 99999)}",
    }


def _journal(org_id: int, task: dict[str, Any]) -> dict[str, Any]:
    return {
        "organization_id": org_id,
        "task_id": task["id"],
        "type": task["status"],
        "time": task["status_changed_at"],
        "source": "system",
        "notes": "Task created",
    }
