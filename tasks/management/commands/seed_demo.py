"""Demo data: an organization with groups, units, crew, customers and a week of tasks.

Idempotent: every row has a fixed external id and is written with update_or_create, and all
randomness comes from one seeded generator that is drawn the same way on every run. Statuses are
reported through the task services, and only for tasks this run created, so re-running never adds
journal entries.
"""

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from taskhub.models import Organization
from tasks.models import Group, Importance, Person, StatusType, Task, TaskAddress, TaskStatus, Unit
from tasks.services import task_assign, task_report_status

SEED = 42
TASK_COUNT = 200
GROUPS = [("demo-group-1", "Riverside Apartments"), ("demo-group-2", "Maple Court"), ("demo-group-3", "Harbor Lofts")]
STREETS = ["Riverside Dr", "Maple Ave", "Harbor St", "Elm St", "Broadway", "Park Pl", "Lexington Ave", "Canal St"]
FIRST = ["Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hiro", "Isla", "Jamal", "Kim", "Luis", "Maya"]
LAST = ["Alvarez", "Brown", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Haddad", "Ito", "Jones", "Khan", "Lopez"]
CREW_COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]
JOBS = [
    "Leaking kitchen faucet",
    "Replace HVAC filter",
    "Deliver and install washer",
    "Smoke detector check",
    "Repaint hallway",
    "Fix garage door opener",
    "Dishwasher not draining",
    "Annual boiler service",
    "Replace broken window",
    "Move-out inspection",
    "Pest control visit",
    "Install ceiling fan",
]
# What each task has been through by now, by how far away its day is.
TODAY_PATHS = [
    [],
    [StatusType.ENROUTE],
    [StatusType.ENROUTE, StatusType.STARTED],
    [StatusType.ENROUTE, StatusType.STARTED, StatusType.COMPLETE],
    [StatusType.ENROUTE, StatusType.STARTED, StatusType.COMPLETE],
    [StatusType.ENROUTE, StatusType.EXCEPTION],
]
LATER_PATHS = [[], [], [], [StatusType.CONFIRMED], [StatusType.CONFIRMED], [StatusType.CANCELLED]]


@dataclass
class TaskPlan:
    external_id: str
    fields: dict[str, Any]
    addresses: list[dict[str, Any]]
    crew: list[Person]
    path: list[StatusType] = field(default_factory=list)


class Command(BaseCommand):
    help = "Create or refresh the demo organization and a week of demo tasks (safe to run again)."

    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(SEED)
        with transaction.atomic():
            org, _ = Organization.objects.update_or_create(
                slug="demo", defaults={"name": "Demo Field Services", "timezone": "America/New_York"}
            )
            groups = self.seed_groups(org)
            units = self.seed_units(org, groups, rng)
            crew = self.seed_people(org, rng, count=8, kind="crew")
            customers = self.seed_people(org, rng, count=40, kind="customer")
            plans = [self.plan_task(org, n, rng, units, crew, customers) for n in range(1, TASK_COUNT + 1)]
            created = sum(self.apply(org, plan) for plan in plans)
        self.stdout.write(
            f"Demo organization '{org.slug}': {len(groups)} groups, {len(units)} units, {len(crew)} crew, "
            f"{len(customers)} customers, {len(plans)} tasks ({created} new)."
        )

    def seed_groups(self, org: Organization) -> list[Group]:
        return [
            Group.objects.update_or_create(organization=org, external_ref=ref, defaults={"name": name})[0]
            for ref, name in GROUPS
        ]

    def seed_units(self, org: Organization, groups: list[Group], rng: random.Random) -> list[Unit]:
        units = []
        for g, group in enumerate(groups, start=1):
            street = STREETS[g - 1]
            for n in range(1, 5):
                defaults = {
                    "group": group,
                    "unit_number": f"{n}{'ABC'[g - 1]}",
                    "address_line_1": f"{100 * g + 10} {street}, Apt {n}{'ABC'[g - 1]}",
                    "city": "New York",
                    "state": "NY",
                    "country": "US",
                    "zipcode": f"1000{g}",
                    "bedrooms": rng.randint(1, 3),
                    "bathrooms": rng.choice(["1.0", "1.5", "2.0"]),
                    "sqft": rng.randrange(550, 1400, 25),
                }
                ref = f"demo-unit-{g}-{n}"
                units.append(Unit.objects.update_or_create(organization=org, external_ref=ref, defaults=defaults)[0])
        return units

    def seed_people(self, org: Organization, rng: random.Random, *, count: int, kind: str) -> list[Person]:
        people = []
        for n in range(1, count + 1):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            # 555-0100..0199 are reserved for fiction and still valid numbers to phonenumbers.
            area, line = ("212", 100 + n) if kind == "crew" else ("646", 100 + n)
            defaults = {
                "first_name": first,
                "last_name": last,
                "email": f"{first}.{last}.{kind}{n}@demo.example".lower(),
                "phone": f"+1{area}555{line:04d}",
                "is_crew": kind == "crew",
                "is_customer": kind == "customer",
                "color": CREW_COLORS[n - 1] if kind == "crew" else "",
            }
            ref = f"demo-{kind}-{n:02d}"
            people.append(Person.objects.update_or_create(organization=org, external_ref=ref, defaults=defaults)[0])
        return people

    def plan_task(
        self,
        org: Organization,
        n: int,
        rng: random.Random,
        units: list[Unit],
        crew: list[Person],
        customers: list[Person],
    ) -> TaskPlan:
        day = rng.randrange(7)
        start = datetime.combine(self.today(org) + timedelta(days=day), time(rng.randint(7, 17)), tzinfo=org.tz)
        unit = rng.choice(units) if rng.random() < 0.7 else None
        unscheduled = rng.random() < 0.05
        windowed = rng.random() < 0.3
        fields = {
            "title": rng.choice(JOBS),
            "details": "Demo task: call the customer on arrival.",
            "importance": rng.choices(list(Importance), weights=[2, 10, 3, 1])[0],
            "start_datetime": None if unscheduled else start,
            "end_datetime": None if unscheduled else start + timedelta(hours=rng.randint(1, 3)),
            "unscheduled": unscheduled,
            "enable_time_window_display": windowed,
            "time_window_start": 60 if windowed else None,
            "group": unit.group if unit else None,
            "unit": unit,
            "customer": rng.choice(customers),
        }
        addresses = [self.address_of(unit, rng)]
        if rng.random() < 0.2:
            addresses.append({"title": "Supplier pick-up", "address_line_1": "42 Canal St", "zipcode": "10013"})
        return TaskPlan(
            external_id=f"demo-task-{n:03d}",
            fields=fields,
            addresses=addresses,
            crew=rng.sample(crew, rng.choice([1, 1, 2])),
            path=rng.choice(TODAY_PATHS if day == 0 else LATER_PATHS),
        )

    @staticmethod
    def today(org: Organization) -> date:
        return timezone.localdate(timezone=org.tz)

    @staticmethod
    def address_of(unit: Unit | None, rng: random.Random) -> dict[str, Any]:
        if unit is not None:
            keys = ["address_line_1", "city", "state", "country", "zipcode"]
            return {"title": "Customer", **{key: getattr(unit, key) for key in keys}}
        line = f"{rng.randint(1, 999)} {rng.choice(STREETS)}"
        return {"title": "Customer", "address_line_1": line, "city": "New York", "state": "NY", "country": "US"}

    def apply(self, org: Organization, plan: TaskPlan) -> bool:
        """Write one planned task; returns whether it was new (and so got its statuses)."""
        task, created = Task.objects.update_or_create(
            organization=org, external_id=plan.external_id, deleted_at=None, defaults=plan.fields
        )
        for position, address in enumerate(plan.addresses):
            TaskAddress.objects.update_or_create(task=task, position=position, defaults=address)
        task.addresses.filter(position__gte=len(plan.addresses)).delete()
        task_assign(task=task, crew=plan.crew, replace=True)
        if created:
            self.report(task, plan)
        return created

    @staticmethod
    def report(task: Task, plan: TaskPlan) -> None:
        now = timezone.now()
        for step, status in enumerate(plan.path):
            task_report_status(
                task=task,
                type=status,
                source=TaskStatus.Source.SYSTEM,
                time=now - timedelta(minutes=15 * (len(plan.path) - step)),
                reporter=plan.crew[0] if status != StatusType.CONFIRMED else None,
                notes="Customer not home; rescheduling." if status == StatusType.EXCEPTION else "",
            )
