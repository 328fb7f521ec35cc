"""Delivering one attempt: claim the row, sign, POST through the guarded seam, record the outcome."""

import functools
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from taskhub.inserting import insert_all
from taskhub.prepared import Prepared, columns, from_row
from taskhub.updating import update_rows

from . import doorbell, http
from .models import RESPONSE_BODY_LIMIT, Attempt, Delivery, Endpoint, Event
from .schedule import retry_delay
from .services import endpoint_disable, enqueue_drains
from .signing import signed_headers

logger = logging.getLogger(__name__)

DISABLE_AFTER = timedelta(days=5)
THROTTLED_CODES = frozenset({429, 502, 504})
RESERVED_HEADERS = frozenset({"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "host"})


def lease_length() -> timedelta:
    """How long a claimed row stays invisible to other workers: past any attempt's timeout."""
    return timedelta(seconds=2 * settings.WEBHOOK_TIMEOUT_SECONDS + 30)


def claim(delivery_id: int) -> Delivery | None:
    """Lease one due delivery to this worker; None if it is final, not due, or leased elsewhere."""
    now = timezone.now()
    claimed = Delivery.objects.due(now).filter(pk=delivery_id).update(locked_until=now + lease_length())
    if not claimed:
        return None
    return Delivery.objects.select_related("event", "endpoint").get(pk=delivery_id)


def claim_due(limit: int) -> list[Delivery]:
    """Lease up to `limit` due deliveries, at most the in-flight allowance of each endpoint."""
    return _claim_due(limit)[0]


def _claim_due(limit: int) -> tuple[list[Delivery], set[int]]:
    """The leased deliveries, and the endpoints whose due deliveries this claim locked but left.

    The candidates stay locked until the claim commits, and an endpoint's drain skips locked rows:
    one that claimed meanwhile found fewer than its free slots, took that for everything due, and
    may have ended. Those endpoints need a drain again.
    """
    now = timezone.now()
    with transaction.atomic():
        candidates = list(
            Delivery.objects.due(now)
            .select_related("endpoint")
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True, of=("self",))[: limit * 2]
        )
        busy = Counter(
            dict(
                Delivery.objects.in_flight(now)
                .filter(endpoint__in={d.endpoint_id for d in candidates})
                .values_list("endpoint")
                .annotate(n=Count("id"))
            )
        )
        chosen = []
        for delivery in candidates:
            if busy[delivery.endpoint_id] < endpoint_allowance(delivery.endpoint) and len(chosen) < limit:
                busy[delivery.endpoint_id] += 1
                chosen.append(delivery)
        Delivery.objects.filter(pk__in=[d.pk for d in chosen]).update(locked_until=now + lease_length())
    left = {d.endpoint_id for d in candidates} - {d.endpoint_id for d in chosen}
    return list(Delivery.objects.select_related("event", "endpoint").filter(pk__in=[d.pk for d in chosen])), left


def claim_for_endpoint(endpoint_id: int) -> list[Delivery]:
    """Lease the endpoint's oldest due deliveries, as many as its in-flight allowance has room for.

    Claims of one endpoint are serialized on its row (FOR NO KEY UPDATE, which does not block
    the inserts of new deliveries), so concurrent claimers never exceed the allowance. Five
    statements per batch, whatever its size. A rate-limited endpoint gets nothing here: the
    sweeper meters it.
    """
    return _claim_for_endpoint(endpoint_id)[0]


def _claim_for_endpoint(endpoint_id: int, answered: int = 0) -> tuple[list[Delivery], bool]:
    """The claimed batch, and whether it filled the free slots (so more may be due).

    `answered`: deliveries this caller leased whose requests have answered but are not recorded
    yet. Their leases count them in flight; their slots are free.
    """
    (claimed,) = _claim_for_endpoints([endpoint_id], answered)
    return claimed


def _claim_for_endpoints(endpoint_ids: Sequence[int], answered: int = 0) -> list[tuple[list[Delivery], bool]]:
    """Each endpoint's batch, claimed as `_claim_for_endpoint` claims one, in one transaction with one lease.

    One change's deliveries go to several endpoints: claimed together they take one transaction,
    one read locking the endpoints' rows, one counting their requests in flight and one UPDATE,
    and a read of due rows per endpoint. The rows are locked in id order, so two such claims
    never wait on each other in a circle.
    """
    now = timezone.now()
    ids = sorted(set(endpoint_ids))
    claims: dict[int, tuple[list[Delivery], bool]] = {}
    with transaction.atomic():
        locked = _lock_endpoints(ids)
        # Counted once the rows are locked: a claim that held them meanwhile has committed its lease.
        busy = {row["endpoint_id"]: row["n"] for row in in_flight(len(ids)).rows(now, *ids)} if locked else {}
        for endpoint_id in ids:
            endpoint = locked.get(endpoint_id)
            claims[endpoint_id] = _claim_rows(endpoint, busy.get(endpoint_id, 0), now, answered)
        leased = [delivery.pk for batch, _ in claims.values() for delivery in batch]
        if leased:
            locked_until = now + lease_length()
            update_rows(Delivery, leased, locked_until=locked_until)
            for batch, _ in claims.values():
                for delivery in batch:
                    delivery.locked_until = locked_until
    return [claims[endpoint_id] for endpoint_id in endpoint_ids]


def _lock_endpoints(ids: list[int]) -> dict[int, Endpoint]:
    """Inside the claim's transaction: the endpoints' rows, locked in id order (those that still exist)."""
    read = endpoint_rows(len(ids))
    return {row["id"]: from_row(Endpoint, row, read.db, ENDPOINT_COLUMNS) for row in read.rows(*ids)}


def _claim_rows(endpoint: Endpoint | None, busy: int, now: datetime, answered: int) -> tuple[list[Delivery], bool]:
    """Inside the claim's transaction, the endpoint's row locked: its due rows for its free slots."""
    if endpoint is None or endpoint.rate_limit is not None:
        return [], False
    room = endpoint_allowance(endpoint) - busy + answered
    if room <= 0:
        return [], False
    due = due_batch(room)
    batch = [_claimed(row, due.db) for row in due.rows(endpoint.pk, now, now)]
    for delivery in batch:
        delivery.endpoint = endpoint
    return batch, len(batch) == room


# A claim's reads, compiled once per thread (taskhub.prepared): compiling them cost more than running them.
ENDPOINT_MARK, NOW_MARK, LEASE_MARK = (
    -(2**62) + 11,
    datetime(2001, 2, 3, 4, 5, 6, 789012, UTC),
    datetime(2001, 2, 3, 4, 5, 6, 789013, UTC),
)
ENDPOINT_COLUMNS, DELIVERY_COLUMNS, EVENT_COLUMNS = columns(Endpoint), columns(Delivery), columns(Event)


def _endpoint_marks(count: int) -> list[int]:
    return [ENDPOINT_MARK + n for n in range(count)]


@functools.cache
def endpoint_rows(count: int) -> Prepared:
    """`count` endpoints' rows, locked (FOR NO KEY UPDATE, which does not block new deliveries) in id order."""

    def build(*endpoint_ids: int):
        # Only the endpoints' rows: their default ordering joins the organization, which must stay unlocked.
        return (
            Endpoint.objects.select_for_update(no_key=True, of=("self",))
            .filter(pk__in=endpoint_ids)
            .order_by("pk")
            .values(*ENDPOINT_COLUMNS)
        )

    return Prepared(build, *_endpoint_marks(count))


@functools.cache
def in_flight(count: int) -> Prepared:
    """How many requests each of `count` endpoints has in flight (endpoints with none have no row)."""

    def build(now: datetime, *endpoint_ids: int):
        return (
            Delivery.objects.in_flight(now)
            .filter(endpoint_id__in=endpoint_ids)
            .order_by()
            .values("endpoint_id")
            .annotate(n=Count("id"))
        )

    return Prepared(build, NOW_MARK, *_endpoint_marks(count))


@functools.cache
def due_batch(size: int) -> Prepared:
    """The endpoint's oldest `size` due deliveries with their events, locked, skipping those locked elsewhere."""

    def build(endpoint_id: int, now: datetime, lease_ended_by: datetime):
        return (
            Delivery.objects.due(now, lease_ended_by)
            .filter(endpoint_id=endpoint_id)
            .order_by("next_attempt_at", "id")
            .select_for_update(skip_locked=True, of=("self",))
            .values(*DELIVERY_COLUMNS, *(f"event__{name}" for name in EVENT_COLUMNS))[:size]
        )

    return Prepared(build, ENDPOINT_MARK, NOW_MARK, LEASE_MARK)


def _claimed(row: dict, db: str) -> Delivery:
    delivery = from_row(Delivery, row, db, DELIVERY_COLUMNS)
    Delivery.event.field.set_cached_value(delivery, from_row(Event, row, db, EVENT_COLUMNS, "event__"))
    return delivery


def endpoint_allowance(endpoint: Endpoint) -> int:
    """In-flight attempts one endpoint may hold, so a slow one cannot take every worker."""
    allowance = settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT
    if endpoint.rate_limit:
        # The sweeper runs every 5 s; a rate-limited endpoint gets at most its share of that window.
        allowance = min(allowance, endpoint.rate_limit * 5)
    return allowance


def endpoint_has_room(delivery: Delivery) -> bool:
    in_flight = Delivery.objects.in_flight(timezone.now()).filter(endpoint_id=delivery.endpoint_id).count()
    return in_flight <= endpoint_allowance(delivery.endpoint)  # this claimed row is one of them


def release(delivery: Delivery) -> None:
    """Give a claimed delivery back untouched."""
    Delivery.objects.filter(pk=delivery.pk).update(locked_until=None)


def deliver_due(limit: int | None = None) -> int:
    """The sweeper's pass: claim due deliveries and attempt them, one batch per endpoint, batches in parallel."""
    deliveries, left = _claim_due(limit or settings.WEBHOOK_SWEEP_BATCH)
    if left:
        hand_on_backlogs(left)
    if not deliveries:
        return 0
    batches: dict[int, list[Delivery]] = {}
    for delivery in deliveries:
        batches.setdefault(delivery.endpoint_id, []).append(delivery)
    if settings.WEBHOOK_SWEEP_THREADS <= 1 or len(batches) == 1 or connection.vendor == "sqlite":
        for batch in batches.values():
            attempt_batch(batch)
    else:
        with ThreadPoolExecutor(max_workers=min(settings.WEBHOOK_SWEEP_THREADS, len(batches))) as pool:
            list(pool.map(_attempt_in_thread, batches.values()))
    hand_on_backlogs(batches)
    return len(deliveries)


def hand_on_backlogs(endpoint_ids: Iterable[int]) -> None:
    """Enqueue a drain for each endpoint that still has deliveries due after the sweeper's batch.

    The sweeper takes at most an endpoint's free slots a pass; a drain that found those slots
    taken by the sweeper ended, and the rest would wait a pass (5 s) per batch. Rate-limited
    endpoints stay with the sweeper's metering.
    """
    backlog = set(
        Delivery.objects.due(timezone.now())
        .filter(endpoint_id__in=list(endpoint_ids), endpoint__rate_limit__isnull=True)
        .order_by()
        .values_list("endpoint_id", flat=True)
        .distinct()
    )
    if backlog:
        enqueue_drains(backlog)


def _attempt_in_thread(batch: list[Delivery]) -> None:
    try:
        attempt_batch(batch)
    except Exception:
        ids = [delivery.pk for delivery in batch]
        logger.exception("Webhook deliveries %s failed unexpectedly; retried when their lease ends.", ids)
    finally:
        connection.close()


_send_pool: ThreadPoolExecutor | None = None
_send_pool_lock = threading.Lock()


def send_pool() -> ThreadPoolExecutor:
    """The process's HTTP senders: a batch's requests go out together; only the sending runs here, no SQL."""
    global _send_pool
    with _send_pool_lock:
        if _send_pool is None:
            threads = max(1, settings.WEBHOOK_SEND_THREADS)
            _send_pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook-send")
        return _send_pool


def request_body(event: Event) -> str:
    payload = event.payload
    ordered = {"type": payload["type"], "timestamp": payload["timestamp"], "data": payload["data"]}
    return json.dumps(ordered, cls=DjangoJSONEncoder, separators=(",", ":"), ensure_ascii=False)


def request_headers(delivery: Delivery, body: str, now: datetime) -> dict[str, str]:
    endpoint = delivery.endpoint
    custom = {k: str(v) for k, v in (endpoint.headers or {}).items() if k.lower() not in RESERVED_HEADERS}
    signed = signed_headers(msg_id=delivery.event_id, timestamp=now, body=body, secrets=endpoint.signing_secrets(now))
    return {**custom, **signed, "content-type": "application/json", "user-agent": "TaskHub-Webhooks/1.0"}


def attempt_batch(deliveries: list[Delivery]) -> list[Attempt | None]:
    """Send one attempt of each claimed delivery of one endpoint, together, and record every outcome at once.

    The requests go out in parallel on the send pool; the attempts are then written in one
    INSERT and the deliveries in one UPDATE, in one transaction.
    """
    endpoint = deliveries[0].endpoint
    if not endpoint.enabled:
        _bury(deliveries, "Not sent: the endpoint is disabled.")
        return [None] * len(deliveries)
    sent = _send_all(deliveries)
    _finish(deliveries, sent)
    return [attempt for attempt, _ in sent]


def _send_all(deliveries: list[Delivery]) -> list[tuple[Attempt, http.Response]]:
    """One attempt of each, in parallel on the send pool (in this thread when there is one)."""
    if len(deliveries) == 1 or settings.WEBHOOK_SEND_THREADS <= 1:
        return [_send(delivery) for delivery in deliveries]
    return list(send_pool().map(_send, deliveries))


class Drainers:
    """Which endpoints a thread of this process is draining, and which were written to meanwhile.

    One change after another queues a task for the same endpoint. Had each of them claimed, they
    would all wait on the endpoint's row lock in turn while its holder, one of many threads of
    one process, waited for the interpreter: a convoy. Instead a task for an endpoint already
    being drained here leaves a note and ends; the drainer claims again before it lets go.
    With Redis, the endpoints held are known to every process (see webhooks.doorbell): a commit
    to a held endpoint queues no task but rings its bell, which the holder hears as a note, and a
    task that finds an endpoint held by another process rings it and ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owners: dict[int, int] = {}
        self._noted: set[int] = set()

    def take(self, endpoint_id: int) -> bool:
        """Drain the endpoint from this thread; False, and a note for its drainer, when another thread does."""
        return bool(self.take_all([endpoint_id]))

    def take_all(self, endpoint_ids: Iterable[int]) -> list[int]:
        """The endpoints this thread now drains, of those asked for; the others get a note for their drainer."""
        with self._lock:  # held across the shared take, so no note lands on a take that then fails
            mine = []
            for endpoint_id in endpoint_ids:
                if endpoint_id in self._owners:
                    self._noted.add(endpoint_id)
                else:
                    self._owners[endpoint_id] = threading.get_ident()
                    mine.append(endpoint_id)
            taken = []
            for endpoint_id, held in zip(mine, doorbell.take(mine), strict=True):
                if held:
                    taken.append(endpoint_id)
                else:
                    del self._owners[endpoint_id]
            return taken

    def noted(self, endpoint_id: int) -> bool:
        """Whether more was written since the last look (and forget it)."""
        return self.noted_all([endpoint_id])[0]

    def noted_all(self, endpoint_ids: Sequence[int]) -> list[bool]:
        with self._lock:
            local = [self._pop_note(endpoint_id) for endpoint_id in endpoint_ids]
        shared = doorbell.heard(endpoint_ids)
        return [a or b for a, b in zip(local, shared, strict=True)]

    def hand_back(self, endpoint_id: int) -> bool:
        """Let go of the endpoint, unless more was written meanwhile: True means it is still ours to drain."""
        with self._lock:
            if self._pop_note(endpoint_id):
                return True
        if doorbell.hand_back(endpoint_id):
            return True
        with self._lock:
            if self._pop_note(endpoint_id):
                return True
            del self._owners[endpoint_id]
            return False

    def release(self, endpoint_id: int) -> bool:
        """Let go of the endpoint if this thread holds it; True when more was written meanwhile, to hand on."""
        return bool(self.release_all([endpoint_id]))

    def release_all(self, endpoint_ids: Iterable[int]) -> list[int]:
        """Let go of those of the endpoints this thread holds; those written to meanwhile, to hand on."""
        ident = threading.get_ident()
        with self._lock:
            mine = [endpoint_id for endpoint_id in endpoint_ids if self._owners.get(endpoint_id) == ident]
            for endpoint_id in mine:
                del self._owners[endpoint_id]
            local = [self._pop_note(endpoint_id) for endpoint_id in mine]
        shared = doorbell.release(mine)
        return [endpoint_id for endpoint_id, a, b in zip(mine, local, shared, strict=True) if a or b]

    def _pop_note(self, endpoint_id: int) -> bool:
        found = endpoint_id in self._noted
        self._noted.discard(endpoint_id)
        return found


drainers = Drainers()


def drain_endpoint(endpoint_id: int, limit: int) -> int:
    """Keep the endpoint's free in-flight slots busy with its due deliveries until none is due.

    A claim fills the free slots and their requests go out together on the send pool. When
    they all answer within SLIDE_AFTER, they are recorded together and the slots claimed again:
    for a fast endpoint, one claim and one write per batch. When some are still out by then,
    the drain records whatever has finished, a few at a time, and claims those slots again at
    once, so a slow response holds up its own slot only, never the whole batch. A claim that did
    not fill the free slots took everything due: no more claims unless a task for the endpoint
    left a note meanwhile (see Drainers). After about `limit` deliveries the drain hands what is
    left to a new task, so one endpoint cannot hold a worker thread forever. Returns how many
    were sent: none when another thread of this process is draining the endpoint.
    """
    if not drainers.take(endpoint_id):
        return 0
    try:
        if settings.WEBHOOK_SEND_THREADS <= 1:
            return _drain_in_batches(endpoint_id, limit)
        return _drain(endpoint_id, limit)
    finally:
        if drainers.release(endpoint_id):
            enqueue_drains([endpoint_id])


def _drain(endpoint_id: int, limit: int) -> int:
    pending: dict[Future, tuple[Delivery, float]] = {}
    answered: list[tuple[Delivery, tuple[Attempt, http.Response]]] = []
    sent, more, touched = 0, True, time.monotonic()
    while True:
        touched = doorbell.touch(endpoint_id, touched)
        if sent < limit and (more or drainers.noted(endpoint_id)):
            # The answered ones still hold their leases until recorded, but their requests are over:
            # their slots are claimed again first, and they are recorded while the new requests are out.
            try:
                batch, more = _claim_for_endpoint(endpoint_id, answered=len(answered))
            except Exception:
                _finish_answered(answered)  # recorded, not sent again when their leases end
                raise
            sent += len(batch)
            if batch and not batch[0].endpoint.enabled:
                _bury(batch, "Not sent: the endpoint is disabled.")
            else:
                started = time.monotonic()
                pending.update((send_pool().submit(_send, delivery), (delivery, started)) for delivery in batch)
        _finish_answered(answered)
        answered = []
        if pending:
            answered = [(pending.pop(future)[0], future.result()) for future in _answered(pending)]
        elif sent >= limit:
            if more:
                enqueue_drains([endpoint_id])
            return sent
        elif not more and not drainers.hand_back(endpoint_id):
            return sent
        else:
            more = True


def _finish_answered(answered: list[tuple[Delivery, tuple[Attempt, http.Response]]]) -> None:
    if answered:
        _finish([delivery for delivery, _ in answered], [outcome for _, outcome in answered])


SLIDE_AFTER = 0.02  # seconds: requests out longer than this get their slots claimed again as they free up
SLIDE_GROUP = 4  # while sliding, this share of the slots is recorded and claimed again together


def _answered(pending: dict[Future, tuple[Delivery, float]]) -> list[Future]:
    """All the requests, if they answer within SLIDE_AFTER of the oldest one's start; else the first few."""
    oldest = min(started for _, started in pending.values())
    done, waiting = wait(pending, timeout=max(0.0, oldest + SLIDE_AFTER - time.monotonic()))
    enough = min(len(pending), max(1, settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT // SLIDE_GROUP))
    while len(done) < enough:
        newly, waiting = wait(waiting, return_when=FIRST_COMPLETED)
        done |= newly
    return list(done)


def _drain_in_batches(endpoint_id: int, limit: int) -> int:
    """The drain without a send pool: a batch of the free slots at a time, sent in this thread."""
    sent, more = 0, True
    while sent < limit:
        if not more and not drainers.hand_back(endpoint_id):
            return sent
        batch, more = _claim_for_endpoint(endpoint_id)
        if batch:
            attempt_batch(batch)
        sent += len(batch)
    if more:
        enqueue_drains([endpoint_id])
    return sent


ROUNDS_AGAIN = 8  # rounds a task runs for its endpoints' later changes before it hands them to drain tasks
ROUND_AGAIN_WITHIN = 0.02  # seconds: a round whose requests took longer hands its endpoints' later changes on


def deliver_round(endpoint_ids: Iterable[int]) -> int:
    """One batch for each endpoint, claimed together, sent together on the send pool, recorded together.

    Endpoints written to while this round held them (other changes' tasks left a note, see
    Drainers) get another round here, claimed together again, when every request of the round
    answered within ROUND_AGAIN_WITHIN: under load, one task sends several changes' deliveries
    instead of each change's task handing every endpoint a drain task of its own. After a slower
    round they get drain tasks of their own, so a slow endpoint never holds up the others for
    more than the one change's round. So does an endpoint whose batch filled its free slots (it
    may have more due), and one still written to after ROUNDS_AGAIN rounds. An endpoint another
    thread of this process is draining is left to that thread. Returns how many were sent.
    """
    taken = drainers.take_all(endpoint_ids)
    filled: set[int] = set()
    again: list[int] = []
    sent = 0
    try:
        this_round = taken
        for _ in range(1 + ROUNDS_AGAIN):
            count, sending = _round(this_round, filled)
            sent += count
            quick = sending <= ROUND_AGAIN_WITHIN
            this_round = [e for e in this_round if e not in filled]
            this_round = [e for e, rang in zip(this_round, drainers.noted_all(this_round), strict=True) if rang]
            if not this_round or not quick:
                break
        again = this_round  # written to after the last round: their notes were taken
    finally:
        rang = set(drainers.release_all(taken))
        more = [e for e in taken if e in rang or e in filled or e in again]
        if more:
            enqueue_drains(more)
    return sent


def _round(endpoint_ids: list[int], filled: set[int]) -> tuple[int, float]:
    """One round; adds to `filled` the endpoints whose batch filled their free slots. How many were
    sent, and how long their requests took (seconds)."""
    claims = _claim_for_endpoints(endpoint_ids) if endpoint_ids else []
    filled.update(batch[0].endpoint_id for batch, full in claims if batch and full)
    batches = [batch for batch, _ in claims if batch]
    for batch in batches:
        if not batch[0].endpoint.enabled:
            _bury(batch, "Not sent: the endpoint is disabled.")
    deliveries = [delivery for batch in batches if batch[0].endpoint.enabled for delivery in batch]
    if not deliveries:
        return 0, 0.0
    started = time.monotonic()
    sent = _send_all(deliveries)
    sending = time.monotonic() - started
    _finish(deliveries, sent)
    return len(deliveries), sending


def _finish(deliveries: list[Delivery], sent: list[tuple[Attempt, http.Response]]) -> None:
    _record(deliveries, sent)
    for delivery, (attempt, _) in zip(deliveries, sent, strict=True):
        log_outcome(delivery, attempt)


def _send(delivery: Delivery) -> tuple[Attempt, http.Response]:
    endpoint = delivery.endpoint
    started = timezone.now()
    body = request_body(delivery.event)
    response = http.post(
        endpoint.url,
        content=body.encode(),
        headers=request_headers(delivery, body, started),
        max_body=RESPONSE_BODY_LIMIT,
    )
    attempt = Attempt(
        delivery=delivery,
        started_at=started,
        status_code=response.status_code,
        latency_ms=response.latency_ms,
        response_body=response.body,
        error=response.error or _describe(response.status_code),
    )
    return attempt, response


def _bury(deliveries: list[Delivery], reason: str) -> None:
    now = timezone.now()
    for delivery in deliveries:
        delivery.status, delivery.next_attempt_at, delivery.locked_until = Delivery.Status.DEAD, None, None
        delivery.last_error, delivery.updated_at = reason, now
    Delivery.objects.bulk_update(deliveries, ["status", "next_attempt_at", "locked_until", "last_error", "updated_at"])
    for delivery in deliveries:
        log_outcome(delivery, None)


def log_outcome(delivery: Delivery, attempt: Attempt | None) -> None:
    """One line per attempt with the ids a grep needs: message, delivery, endpoint, Travtus request."""
    fields = {
        "webhook_id": delivery.event_id,
        "delivery_id": delivery.pk,
        "endpoint_id": delivery.endpoint_id,
        "event_type": delivery.event.type,
        "outcome": delivery.status,
        "attempt": delivery.attempts,
        "status_code": attempt.status_code if attempt else None,
        "latency_ms": attempt.latency_ms if attempt else None,
    }
    if delivery.event.request_id:
        fields["travtus_request_id"] = delivery.event.request_id
    level = logging.WARNING if delivery.status == Delivery.Status.DEAD else logging.INFO
    logger.log(
        level,
        "Webhook %s (delivery %s) to endpoint %s: %s, status %s, %s ms.",
        delivery.event_id,
        delivery.pk,
        delivery.endpoint_id,
        delivery.status,
        fields["status_code"],
        fields["latency_ms"],
        extra=fields,
    )


def _describe(status_code: int | None) -> str:
    if status_code is None or 200 <= status_code < 300:
        return ""
    if 300 <= status_code < 400:
        return f"Redirect ({status_code}) not followed: point the endpoint at the final URL."
    return f"The endpoint answered {status_code}."


RECORDED_FIELDS = [
    "status",
    "attempts",
    "next_attempt_at",
    "locked_until",
    "last_status_code",
    "last_error",
    "updated_at",
]


@transaction.atomic
def _record(deliveries: list[Delivery], sent: list[tuple[Attempt, http.Response]]) -> None:
    """Write the attempts and each delivery's next step, for one endpoint's deliveries or several
    endpoints'; an endpoint's failure clock only when it changes.

    Endpoints' rows are written in id order, the order in which claims lock them, so a record of
    several endpoints and a claim of several never wait on each other in a circle.
    """
    insert_all([attempt for attempt, _ in sent])
    now = timezone.now()
    by_endpoint: dict[int, list[tuple[Delivery, tuple[Attempt, http.Response]]]] = {}
    for pair in zip(deliveries, sent, strict=True):
        by_endpoint.setdefault(pair[0].endpoint_id, []).append(pair)
    failed, succeeded = [], {}
    for endpoint_id in sorted(by_endpoint):
        group = by_endpoint[endpoint_id]
        endpoint = group[0][0].endpoint
        if endpoint.failing_since is not None and any(attempt.succeeded for _, (attempt, _) in group):
            # Read with the claim: most successes need no write.
            Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=False).update(failing_since=None)
            endpoint.failing_since = None
        disabled = False
        for delivery, (attempt, response) in group:
            delivery.attempts += 1
            delivery.last_status_code = attempt.status_code
            delivery.last_error = attempt.error
            delivery.locked_until = None
            delivery.updated_at = now
            if attempt.succeeded:
                delivery.status, delivery.next_attempt_at = Delivery.Status.SUCCEEDED, None
                succeeded.setdefault((attempt.status_code, delivery.attempts), []).append(delivery.pk)
                continue
            disabled = disabled or _note_failure(endpoint, attempt, now)
            delay = None if disabled else _next_delay(delivery.attempts, response)
            delivery.status = Delivery.Status.DEAD if delay is None else Delivery.Status.FAILED
            delivery.next_attempt_at = None if delay is None else now + delay
            failed.append(delivery)
    # Successes differ only in their status code and attempt count: one UPDATE for each pair (usually
    # one in all), its statement kept per row count (the rows are leased here: nobody else writes them).
    for (status_code, attempts), ids in succeeded.items():
        update_rows(
            Delivery,
            ids,
            status=Delivery.Status.SUCCEEDED,
            attempts=attempts,
            next_attempt_at=None,
            locked_until=None,
            last_status_code=status_code,
            last_error="",
            updated_at=now,
        )
    if failed:
        Delivery.objects.bulk_update(failed, RECORDED_FIELDS)


def _next_delay(failures: int, response: http.Response | None) -> timedelta | None:
    if response is not None and response.blocked:
        return None  # the address will not become public by waiting
    throttled = response is not None and (response.timed_out or response.status_code in THROTTLED_CODES)
    retry_after = _retry_after(response.headers) if response is not None and response.headers else None
    return retry_delay(failures, throttled=throttled, retry_after=retry_after)


def _retry_after(headers) -> timedelta | None:
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        return parsedate_to_datetime(value) - timezone.now()
    except (TypeError, ValueError):
        return None


def _note_failure(endpoint: Endpoint, attempt: Attempt, now: datetime) -> bool:
    """Start or extend the endpoint's run of failures; True if that disabled it."""
    if endpoint.failing_since is None:
        Endpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(failing_since=now)
        endpoint.failing_since = now
    if attempt.status_code == 410:
        endpoint_disable(endpoint=endpoint, reason="The endpoint answered 410 Gone.")
        return True
    if now - endpoint.failing_since >= DISABLE_AFTER:
        endpoint_disable(endpoint=endpoint, reason="Every delivery failed for 5 days.")
        return True
    return False
