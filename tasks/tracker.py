"""The customer's view of one task: what the tracker page and its status JSON show, and nothing more.

Everything here is built from one query: the task, with its organization, rating and first
address, its crew, and its customer-visible journal (with the photos of those entries). The
status JSON's "entries since" asks for the newer journal entries in a query of their own.
"""

import contextlib
import functools
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.db import transaction
from django.db.models import Aggregate, FilteredRelation, JSONField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import JSONObject
from django.templatetags.static import static
from django.utils import timezone
from django.utils.formats import date_format, time_format
from django.utils.translation import get_language, gettext, gettext_noop

from taskhub.cache import get_or_note
from taskhub.models import Organization
from taskhub.prepared import Prepared, columns, from_row

from . import events
from .attachments import IMAGE_TYPES, signed_url
from .models import Person, Rating, StatusType, Task, TaskAddress, TaskStatus, new_tracker_token
from .services import cache_rating, lock_task

# What a token can look like; anything else is a 404 without touching the database.
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{16,43}$")
JOURNAL_LIMIT = 50
PAGE_STATIC = ("tracker/tracker.css", "tracker/tracker.js", "tracker/vendor/leaflet/leaflet.css",
               "tracker/vendor/leaflet/leaflet.js")  # fmt: skip
ENTRY_COLUMNS = ("pk", "type", "kind", "source", "time", "notes", "shown__pk", "shown__file", "shown__content_type",
                 "shown__filename")  # fmt: skip
ENDED = frozenset({StatusType.COMPLETE, StatusType.CANCELLED})
PROBLEMS = frozenset({StatusType.EXCEPTION, StatusType.CUSTOMER_EXCEPTION})

STEPS = (
    ("scheduled", gettext_noop("Scheduled")),
    ("enroute", gettext_noop("On the way")),
    ("started", gettext_noop("In progress")),
    ("complete", gettext_noop("Complete")),
)
STEP_OF = {StatusType.ENROUTE: 1, StatusType.STARTED: 2, StatusType.COMPLETE: 3}
DETAILS = {
    1: gettext_noop("Your crew is on the way."),
    2: gettext_noop("Work is in progress."),
    3: gettext_noop("The job is done. Thank you!"),
}
# Step-0 statuses that read well to a customer under their own name; the rest read "Scheduled".
OWN_LABEL = frozenset({StatusType.CONFIRMED, StatusType.PREPARING, StatusType.READYFORPICKUP, StatusType.RESCHEDULED})


def _(message: str) -> str:
    """`gettext`, remembered per language and process.

    A page or document built for the first time looks up a dozen fixed labels, and each lookup
    walked Django's catalogues: 15% of a first view of the status JSON. Catalogues are loaded
    once per process, so a label's translation never changes under it.
    """
    return _translated(get_language(), message)


@functools.lru_cache(maxsize=512)
def _translated(language: str, message: str) -> str:
    return gettext(message)  # called while `language` is the active one: it is in the key only


def status_label(status: StatusType) -> str:
    """The status's own name (a lazy model choice label), remembered as `_` remembers labels."""
    return _status_label(get_language(), status)


@functools.lru_cache(maxsize=512)
def _status_label(language: str, status: StatusType) -> str:
    return str(status.label)


# --- Loading ---------------------------------------------------------------------------------


class JSONArrayAgg(Aggregate):
    """The grouped rows' values as one JSON array, in no particular order (PostgreSQL and SQLite)."""

    function = "JSONB_AGG"  # jsonb, which Django's JSONField reads on PostgreSQL (json it would not)
    output_field = JSONField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, function="JSON_GROUP_ARRAY", **extra_context)


def first_address() -> Subquery:
    fields = ("address_line_1", "address_line_2", "city", "state", "zipcode", "country", "lat", "lng")
    rows = TaskAddress.objects.filter(task=OuterRef("pk")).order_by("position", "pk")
    return Subquery(rows.values(data=JSONObject(**{name: name for name in fields}))[:1])


# What the page and its JSON read of the task, its organization and its rating: nothing else.
TASK_FIELDS = columns(Task, ("id", "organization_id", "url_safe_id", "title", "version", "status",
    "status_changed_at", "deleted_at", "unscheduled", "start_datetime", "end_datetime",
    "enable_time_window_display", "time_window_start", "eta"))  # fmt: skip
ORGANIZATION_FIELDS = columns(Organization, ("id", "name", "timezone", "logo", "brand_color",
                                             "tracker_frame_ancestors"))  # fmt: skip
RATING_FIELDS = columns(Rating, ("id", "organization_id", "task_id", "score", "text", "created_at"))


def tracker_rows(token: str) -> QuerySet:
    """The tracker's one read: plain values rather than select_related, and built into SQL once
    (TRACKER_ROW), since most views end at a remembered page and this is the one query they make.

    The crew and the journal come along as JSON arrays: a first view then takes this one query
    instead of three (0.24 ms less of web CPU), for 0.05 ms more of the database's a view."""
    selected = (
        *TASK_FIELDS,
        *(f"organization__{name}" for name in ORGANIZATION_FIELDS),
        *(f"rating__{name}" for name in RATING_FIELDS),
    )
    # The token is unique: no ORDER BY to build or run.
    lists = {"first_address": first_address(), "crew": crew_list(), "journal": journal_list()}
    return Task.objects.filter(url_safe_id=token).order_by().values(*selected, **lists)[:1]


TRACKER_ROW = Prepared(tracker_rows, "\x00token\x00")


def tracker_task(token: str) -> Task | None:
    """The task behind a tracker token, with what the page needs, in one query; None when unknown.

    Fields the page does not read are deferred: reading one would cost a query of its own.
    """
    if not TOKEN_RE.match(token or ""):
        return None
    row = TRACKER_ROW.first(token)
    if row is None:
        return None
    db = TRACKER_ROW.db
    task = from_row(Task, row, db, TASK_FIELDS)
    Task.organization.field.set_cached_value(
        task, from_row(Organization, row, db, ORGANIZATION_FIELDS, "organization__")
    )
    cache_rating(task, from_row(Rating, row, db, RATING_FIELDS, "rating__"))
    task.first_address = row["first_address"]
    task.tracker_crew, task.tracker_journal = row["crew"], row["journal"]
    return task


def is_expired(task: Task, now: datetime | None = None) -> bool:
    """A finished task's page lives TRACKER_EXPIRY_DAYS after it finished."""
    if task.status not in ENDED:
        return False
    return task.status_changed_at + timedelta(days=settings.TRACKER_EXPIRY_DAYS) < (now or timezone.now())


def rating_of(task: Task):
    return getattr(task, "rating", None)  # reverse one-to-one: missing raises an AttributeError subclass


# --- Presentation ----------------------------------------------------------------------------


def local(task: Task, value: datetime) -> datetime:
    return timezone.localtime(value, task.organization.tz)


def day_text(value: datetime) -> str:
    """'Tuesday, March 3, 2026' in the active language, for a local time."""
    return _day_text(get_language(), value.date())


def weekday_text(value: datetime) -> str:
    """'Tue' in the active language."""
    return _weekday_text(get_language(), value.weekday())


def clock_text(value: datetime) -> str:
    """'3 p.m.' in the active language's TIME_FORMAT, for a local time."""
    return _clock_text(get_language(), value.time().replace(microsecond=0))


# Formatting a date walks Django's format machinery (0.03 ms a call); tasks share their days and times.
@functools.lru_cache(maxsize=1024)
def _day_text(language: str, day: date) -> str:
    return f"{date_format(day, 'l')}, {date_format(day, 'DATE_FORMAT')}"  # while `language` is active


@functools.lru_cache(maxsize=64)
def _weekday_text(language: str, weekday: int) -> str:
    return date_format(A_MONDAY + timedelta(days=weekday), "D")


A_MONDAY = date(2024, 1, 1)


@functools.lru_cache(maxsize=2048)
def _clock_text(language: str, moment: dt_time) -> str:
    return time_format(moment, "TIME_FORMAT")


@dataclass(frozen=True)
class Progress:
    status: str
    step: int | None  # None: exception or cancelled, shown plainly without the step indicator
    label: str
    detail: str
    tone: str  # progress | complete | problem | cancelled


def progress(task: Task) -> Progress:
    status = StatusType(task.status)
    if status in PROBLEMS:
        detail = _("Something came up with this job. We will be in touch; you can also send us a message.")
        return Progress(status, None, _("Needs attention"), detail, "problem")
    if status == StatusType.CANCELLED:
        detail = _("This job has been cancelled. If you did not expect this, send us a message.")
        return Progress(status, None, _("Cancelled"), detail, "cancelled")
    step = STEP_OF.get(status, 0)
    if step:
        detail = _(DETAILS[step])
        return Progress(status, step, _(STEPS[step][1]), detail, "complete" if step == 3 else "progress")
    if task.unscheduled or not task.start_datetime:
        return Progress(status, 0, _("Booked"), _("We will let you know when a time is set."), "progress")
    label = status_label(status) if status in OWN_LABEL else _(STEPS[0][1])
    return Progress(status, 0, label, "", "progress")


def steps(current: int | None) -> list[dict[str, Any]]:
    """The step indicator; all 'todo' (and hidden by the page) when there is no current step."""
    at = -1 if current is None else current
    return [
        {"key": key, "label": _(label), "state": "done" if i < at else "current" if i == at else "todo"}
        for i, (key, label) in enumerate(STEPS)
    ]


def schedule(task: Task) -> dict[str, Any] | None:
    """The appointment in the organization's time zone: a time window when the task shows one."""
    if task.unscheduled or not task.start_datetime:
        return None
    start = local(task, task.start_datetime)
    zone = start.tzname()
    if not task.enable_time_window_display:
        text = _("%(day)s at %(time)s %(zone)s") % {"day": day_text(start), "time": clock_text(start), "zone": zone}
        return {"start": start.isoformat(), "end": None, "window": False, "text": text}
    opens = start - timedelta(minutes=task.time_window_start or 0)
    closes = local(task, task.end_datetime) if task.end_datetime else start
    if opens.date() == closes.date():
        text = _("%(day)s, between %(start)s and %(end)s %(zone)s") % {
            "day": day_text(opens), "start": clock_text(opens), "end": clock_text(closes), "zone": zone,
        }  # fmt: skip
    else:
        text = _("From %(start)s to %(end)s %(zone)s") % {
            "start": f"{day_text(opens)} {clock_text(opens)}", "end": f"{day_text(closes)} {clock_text(closes)}",
            "zone": zone,
        }  # fmt: skip
    return {"start": opens.isoformat(), "end": closes.isoformat(), "window": True, "text": text}


def eta(task: Task) -> dict[str, Any] | None:
    if task.status != StatusType.ENROUTE or task.eta is None:
        return None
    arrival = local(task, task.eta)
    text = _("Expected around %(time)s %(zone)s") % {"time": clock_text(arrival), "zone": arrival.tzname()}
    return {"at": arrival.isoformat(), "text": text}


def address(task: Task) -> dict[str, Any] | None:
    data = getattr(task, "first_address", None)
    if not data:
        return None
    locality = " ".join(part for part in (data.get("zipcode"), data.get("city")) if part)
    lines = [data.get("address_line_1"), data.get("address_line_2"), locality, data.get("state"), data.get("country")]
    lines = [line for line in lines if line]
    has_point = data.get("lat") is not None and data.get("lng") is not None
    point = {"lat": data["lat"], "lng": data["lng"]} if has_point else None
    return {"lines": lines, "point": point} if lines or point else None


# The markers the compiled journal query binds in place of a task id and a journal id.
TASK_MARK, SINCE_MARK = -(2**62) + 1, -(2**62) + 2
CREW_COLUMNS = {"pk": "person_id", "first_name": "person__first_name", "photo": "person__photo"}
PHOTOS = Person._meta.get_field("photo")


def crew_list() -> Subquery:
    """The crew's first names and photos, as one JSON array of the task row (sorted where it is read)."""
    rows = Task.assignees.through.objects.filter(task=OuterRef("pk")).order_by().values("task")
    return Subquery(rows.annotate(data=JSONArrayAgg(JSONObject(**CREW_COLUMNS))).values("data"))


def crew(task: Task) -> list[dict[str, Any]]:
    """First names and photos only: a customer never sees crew contact details."""
    rows = sorted(task.tracker_crew or (), key=lambda row: (row["first_name"], row["pk"]))
    return [
        {"first_name": row["first_name"] or _("Crew member"),
         "photo": PHOTOS.storage.url(row["photo"]) if row["photo"] else None}
        for row in rows
    ]  # fmt: skip


def journal_rows(task_id: int | OuterRef, since: int = 0) -> QuerySet:
    """Customer-visible entries (the latest JOURNAL_LIMIT after `since`), one row per visible file."""
    latest = (
        TaskStatus.objects.filter(task=task_id, visible_to_customer=True, pk__gt=since)
        .order_by("-time", "-pk")
        .values("pk")[:JOURNAL_LIMIT]
    )
    return TaskStatus.objects.filter(pk__in=latest).annotate(
        shown=FilteredRelation("attachments", condition=Q(attachments__visible_to_customer=True))
    )


def journal_list() -> Subquery:
    """The journal's rows, as one JSON array of the task row (sorted where it is read)."""
    rows = journal_rows(OuterRef(OuterRef("pk"))).order_by().values("task")
    data = JSONObject(**{column.replace("__", "_"): column for column in ENTRY_COLUMNS})
    return Subquery(rows.annotate(data=JSONArrayAgg(data)).values("data"))


def newer_journal_rows(task_id: int, since: int) -> QuerySet:
    return journal_rows(task_id, since).values(*ENTRY_COLUMNS).order_by("time", "pk", "shown__pk")


JOURNAL_ROWS = Prepared(newer_journal_rows, TASK_MARK, SINCE_MARK)


def journal(task: Task, since: int = 0) -> list[dict[str, Any]]:
    """Customer-visible entries (the latest JOURNAL_LIMIT, oldest first) with their visible files.

    The entries came with the task's row; those after `since` take a query of their own.
    """
    if since:
        rows = [{column.replace("__", "_"): value for column, value in row.items()}
                for row in JOURNAL_ROWS.rows(task.pk, since)]  # fmt: skip
    else:
        rows = [{**row, "time": moment(row["time"])} for row in task.tracker_journal or ()]
        rows.sort(key=lambda row: (row["time"], row["pk"], row["shown_pk"] or 0))
    entries: dict[int, dict[str, Any]] = {}
    for row in rows:
        entry = entries.get(row["pk"]) or entries.setdefault(row["pk"], journal_entry(task, row))
        if row["shown_pk"] and row["shown_file"]:
            entry["files"].append(file_link(row))
    return list(entries.values())


def moment(value: str) -> datetime:
    """A time as a JSON document of the database gives it: ISO 8601, and UTC where no offset is given."""
    found = datetime.fromisoformat(value)
    return found if found.tzinfo else found.replace(tzinfo=UTC)


def journal_entry(task: Task, row: dict[str, Any]) -> dict[str, Any]:
    at = local(task, row["time"])
    from_customer = row["kind"] == TaskStatus.Kind.CUSTOMER_MESSAGE
    label = _("Your message") if from_customer else entry_label(row["type"])
    # System entries carry machine notes ("Task created"), not words written for the customer.
    notes = "" if row["source"] == TaskStatus.Source.SYSTEM else row["notes"]
    return {"id": row["pk"], "time": at.isoformat(), "time_text": f"{weekday_text(at)} {clock_text(at)}",
            "label": label, "notes": notes, "from_customer": from_customer, "files": []}  # fmt: skip


def entry_label(status: str) -> str:
    status = StatusType(status)
    if status in PROBLEMS:
        return _("Needs attention")
    if status == StatusType.CANCELLED:
        return _("Cancelled")
    step = STEP_OF.get(status, 0)
    return status_label(status) if not step and status in OWN_LABEL else _(STEPS[step][1])


def file_link(row: dict[str, Any]) -> dict[str, Any]:
    from .models import Attachment

    attachment = Attachment(pk=row["shown_pk"])
    is_image = row["shown_content_type"] in IMAGE_TYPES
    return {"url": signed_url(attachment), "image": is_image, "name": row["shown_filename"] or _("File")}


def rating_data(task: Task) -> dict[str, Any] | None:
    rating = rating_of(task)
    if rating is None:
        return None
    return {"score": rating.score, "text": rating.text, "created_at": rating.created_at.isoformat()}


def can_rate(task: Task) -> bool:
    return task.status == StatusType.COMPLETE and rating_of(task) is None


# --- The status document -----------------------------------------------------------------------


def etag(task: Task, language: str) -> str:
    """Strong: every change a customer can see bumps the task's version (a rating does too)."""
    return f'"v{task.version}-r{int(rating_of(task) is not None)}-{language}"'


def status_document(task: Task, since: int = 0) -> dict[str, Any]:
    state = progress(task)
    return {
        "version": task.version,
        "status": state.status,
        "step": state.step,
        "steps": steps(state.step),
        "label": state.label,
        "detail": state.detail,
        "tone": state.tone,
        "eta": eta(task),
        "window": schedule(task),
        "crew": crew(task),
        "entries": journal(task, since),
        "can_rate": can_rate(task),
        "rating": rating_data(task),
    }


# --- Remembering what was built ----------------------------------------------------------------


KEY_FORMAT = 3  # bumped whenever what is remembered changes shape


@functools.cache
def static_files() -> str:
    return " ".join(static(name) for name in PAGE_STATIC)


def view_key(task: Task, kind: str, *parts: object) -> str:
    """Names one rendering of the task: it changes whenever anything the customer sees may have changed.

    The task's version covers the task, its journal and its crew; the rating and language are as in
    the ETag; a digest covers the link itself (random, so a task made after a database restore never
    meets an older task's entry), what the page shows of the organization, and the addresses of
    the page's static files (a deploy that changes them builds new pages).
    """
    org = task.organization
    shown = "\x1f".join((task.url_safe_id, org.name, org.logo.name or "", org.brand_color, org.timezone,
                         static_files()))  # fmt: skip
    digest = hashlib.blake2b(shown.encode(), digest_size=8).hexdigest()
    rated = int(rating_of(task) is not None)
    tail = "".join(f":{part}" for part in parts)
    return f"tracker:{KEY_FORMAT}:{kind}:{task.pk}:v{task.version}:r{rated}:{get_language()}:{digest}{tail}"


def remembered[T](key: str, build: Callable[[], T]) -> T:
    """`build()`, kept for TRACKER_CACHE_SECONDS under `key`: in this process, and in the shared cache
    once it is asked for a second time.

    Customers reopen the link and many customers watch tasks that have not changed since; every
    view still reads the task itself (deleted, expired, version). The time limit bounds what the
    version does not cover: a crew member's name or photo, and the life of signed file links.
    Most versions are seen once (a page, then its script polls the JSON, which answers 304 until
    the task changes), so the first view keeps what it built in this process only and leaves a
    note in the shared cache, in the same round trip as the read; a view that finds the note
    builds again and shares. A copy taken from the shared cache lives here only as long as it has
    left there. A shared cache that cannot be reached costs speed, never the page.
    """
    seconds = settings.TRACKER_CACHE_SECONDS
    if seconds <= 0:
        return build()
    near = caches["tracker-local"]
    found = near.get(key)
    if found is None:
        try:
            found, asked = get_or_note(cache, key, seconds)
        except (redis.RedisError, OSError):
            found, asked = None, False
        if found is None:
            found = (time.time() + seconds, build())
            if asked:
                with contextlib.suppress(redis.RedisError, OSError):
                    cache.set(key, found, seconds)
        left = found[0] - time.time()
        if left > 0:
            near.set(key, found, left)
    return found[1]


def cached_status_document(task: Task, since: int = 0) -> dict[str, Any]:
    return remembered(view_key(task, "status", since), lambda: status_document(task, since))


# --- Dispatcher action -------------------------------------------------------------------------


@transaction.atomic
def tracker_rotate_token(*, task: Task) -> Task:
    """A new tracker link; the old one answers 404 from now on."""
    task = lock_task(task)
    task.url_safe_id = new_tracker_token()
    task.version += 1
    task.save(update_fields=["url_safe_id", "version", "updated_at"])
    events.task_changed(task, created=False, changed=["url_safe_id"], crew_added=set(), crew_removed=set())
    return task
