"""Template context and rendering: the small, documented set of names a template can use."""

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from django.template import Context, Engine, Template, TemplateSyntaxError
from django.utils import timezone
from django.utils.html import escape, linebreaks, urlize

from taskhub.models import Organization
from tasks.models import Person, Task

# Messages are plain text: nothing is HTML-escaped (the email's HTML part is escaped as a whole).
# No loaders: a template cannot include or extend files.
ENGINE = Engine(autoescape=False, debug=False, loaders=[])
SMS_MAX_LENGTH = 1600  # Twilio's limit for one message body

SAMPLE_CONTEXT: dict[str, Any] = {
    "customer_name": "Ada Lovelace",
    "task_title": "Install dishwasher",
    "when": "Tue 1 Dec, between 08:00 and 11:00",
    "crew_first_names": "Bob, Cy",
    "tracker_url": "https://taskhub.example.com/t/Xq3v9TnB2dLh0aPcWk1yRg",
    "org_name": "Acme Field Services",
    "status_label": "On the way",
    "address": "1 Main St, New York",
    "recipient_name": "Bob",
    "date": "Tue 1 Dec",
    "tasks": [
        {"title": "Install dishwasher", "when": "08:00–11:00", "address": "1 Main St", "tracker_url": "https://…"},
        {"title": "Fix boiler", "when": "13:00–14:00", "address": "9 Dock Rd", "tracker_url": "https://…"},
    ],
}


class RenderError(Exception):
    """A template that does not compile or render."""


def check_template(source: str) -> None:
    """Raise RenderError with the reason when `source` does not compile or render with the sample context."""
    render(source, SAMPLE_CONTEXT)


@lru_cache(maxsize=1024)
def compiled(source: str) -> Template:
    """A template compiled once per process: a change renders the same few rules' texts every time.

    Compiled templates are safe to share between threads, as Django's cached loader shares them.
    """
    return ENGINE.from_string(source)


def render(source: str, context: dict[str, Any]) -> str:
    try:
        return compiled(source).render(Context(context, autoescape=False)).strip()
    except TemplateSyntaxError as exc:
        raise RenderError(str(exc)) from exc
    except Exception as exc:  # a filter given the wrong type, and the like
        raise RenderError(f"{type(exc).__name__}: {exc}") from exc


def email_html(text: str) -> str:
    """The email's HTML part: the text, escaped, with links and paragraphs."""
    return linebreaks(urlize(escape(text)), autoescape=False)


def day_label(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


def when_text(task: Task, tz) -> str:
    """The time or time window in the organization's zone; "unscheduled" when there is none."""
    if task.unscheduled or not task.start_datetime:
        return "unscheduled"
    start = timezone.localtime(task.start_datetime, tz)
    end = timezone.localtime(task.end_datetime, tz) if task.end_datetime else None
    day = day_label(start.date())
    if task.enable_time_window_display and task.time_window_start:
        # The window opens `time_window_start` minutes before the start and closes at the end.
        opens = start - timedelta(minutes=task.time_window_start)
        return f"{day}, between {opens:%H:%M} and {(end or start):%H:%M}"
    if end and end.date() == start.date():
        return f"{day}, {start:%H:%M}–{end:%H:%M}"
    return f"{day}, {start:%H:%M}"


def address_text(task: Task) -> str:
    first = next((a for a in task.addresses.all() if a.position == 0), None)
    return str(first) if first else ""


def person_name(person: Person | None) -> str:
    if person is None:
        return ""
    return person.full_name or person.company_name


def task_context(task: Task, organization: Organization) -> dict[str, Any]:
    """The names a task's templates can use (docs/notifications.md)."""
    from tasks.serializers import tracker_url  # serializers import a lot; keep this module light

    crew = list(task.assignees.all())
    return {
        "customer_name": person_name(task.customer),
        "task_title": task.title or "your appointment",
        "when": when_text(task, organization.tz),
        "crew_first_names": ", ".join(p.first_name for p in crew if p.first_name),
        "tracker_url": tracker_url(task),
        "org_name": organization.name,
        "status_label": task.get_status_display(),
        "address": address_text(task),
    }


def digest_context(organization: Organization, person: Person, day: date, tasks: list[Task]) -> dict[str, Any]:
    """A crew member's day-before digest: the day and its tasks."""
    from tasks.serializers import tracker_url

    tz = organization.tz
    rows = []
    for task in tasks:
        start = timezone.localtime(task.start_datetime, tz)
        end = timezone.localtime(task.end_datetime, tz) if task.end_datetime else None
        rows.append({
            "title": task.title or str(task),
            "when": f"{start:%H:%M}–{end:%H:%M}" if end else f"{start:%H:%M}",
            "address": address_text(task),
            "customer_name": person_name(task.customer),
            "tracker_url": tracker_url(task),
        })  # fmt: skip
    return {
        "org_name": organization.name,
        "recipient_name": person.first_name or person_name(person),
        "date": day_label(day),
        "tasks": rows,
    }


def now_in(organization: Organization, now: datetime | None = None) -> datetime:
    return timezone.localtime(now or timezone.now(), organization.tz)
