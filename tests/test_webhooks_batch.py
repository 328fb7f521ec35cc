"""Deliveries go out a batch per endpoint: one task per endpoint per commit, one claim and one write per batch."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.celery_broker import own_broker, queued
from webhooks import delivery as delivery_module
from webhooks import services
from webhooks.delivery import attempt_batch, claim_for_endpoint, deliver_due, deliver_round
from webhooks.models import Attempt, Delivery
from webhooks.tasks import deliver_endpoint, deliver_endpoints

pytest_plugins = ["tests.webhook_fixtures"]

BROKER_URL = "redis://127.0.0.1:6379/13"
DATA = {"identifier": "t1", "version": 1}


def queue(org, count: int, endpoint_types=("task.created",)) -> None:
    """Write `count` events the way a request does, without running their on-commit enqueue."""
    for n in range(count):
        services.emit(organization=org, type=endpoint_types[n % len(endpoint_types)], data={**DATA, "n": n})


@pytest.fixture
def broker():
    """This suite's own Redis database, emptied before and after: the queue is read, no worker runs."""
    with own_broker(BROKER_URL) as client:
        yield client


@pytest.mark.django_db
@pytest.mark.requires_redis
def test_one_change_that_sends_several_events_to_several_endpoints_enqueues_one_task(
    org, make_endpoint, broker, django_capture_on_commit_callbacks
):
    first, second = make_endpoint(), make_endpoint()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        queue(org, 3, ("task.updated", "task.rescheduled", "task.assigned"))
    assert Delivery.objects.count() == 6
    assert queued(broker, "webhooks") == [("webhooks.tasks.deliver_endpoints", ([first.pk, second.pk],))]


@pytest.mark.django_db
@pytest.mark.requires_redis
def test_a_change_for_one_endpoint_enqueues_its_drain(org, endpoint, broker, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        queue(org, 2)
    assert queued(broker, "webhooks") == [("webhooks.tasks.deliver_endpoint", (endpoint.pk,))]


@pytest.mark.django_db
@pytest.mark.requires_redis
def test_the_task_of_several_endpoints_sends_a_batch_to_each_and_hands_on_a_backlog(
    org, make_endpoint, receiver, broker, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 3
    quiet = make_endpoint(event_types=["task.updated"])
    busy = make_endpoint(event_types=["task.created"])
    with django_capture_on_commit_callbacks():
        queue(org, 6, ("task.created", "task.created", "task.updated"))  # busy: 4, quiet: 2
    deliver_endpoints([quiet.pk, busy.pk])
    assert len(receiver.wait_for(5)) == 5  # quiet's two and busy's allowance of three
    statuses = dict(Delivery.objects.values_list("endpoint").annotate(n=Count("id")).filter(status="succeeded"))
    assert statuses == {quiet.pk: 2, busy.pk: 3}
    assert queued(broker, "webhooks") == [("webhooks.tasks.deliver_endpoint", (busy.pk,))]
    deliver_endpoint(busy.pk)
    assert len(receiver.wait_for(6)) == 6
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}


@pytest.mark.django_db
def test_the_endpoints_of_one_change_are_claimed_in_one_transaction_and_recorded_in_one(
    org, make_endpoint, receiver, django_capture_on_commit_callbacks
):
    """Three endpoints cost a read of due rows each, not three times the claim's other reads, its
    transaction, lease and record."""
    counts = {}
    for n, event_type in ((1, "task.created"), (3, "task.updated")):
        endpoints = [make_endpoint(event_types=[event_type]) for _ in range(n)]
        with django_capture_on_commit_callbacks():
            queue(org, 2, (event_type,))
        with CaptureQueriesContext(connection) as captured:
            assert deliver_round([e.pk for e in endpoints]) == 2 * n
        counts[n] = [query["sql"] for query in captured]
    # The endpoints' rows are locked and their requests in flight counted in one read each.
    reads_per_endpoint = 1  # its due rows
    assert len(counts[3]) == len(counts[1]) + 2 * reads_per_endpoint
    assert sum(sql.startswith(("UPDATE", "INSERT")) for sql in counts[3]) == 3  # lease, attempts, outcomes
    assert receiver.wait_for(8)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}


@pytest.mark.django_db
def test_a_round_records_each_endpoints_outcomes_and_failure_clock_on_its_own(
    org, make_endpoint, receiver, other_receiver, django_capture_on_commit_callbacks
):
    other_receiver.always(500)
    recovered = make_endpoint(failing_since=timezone.now() - timedelta(hours=1))
    failing = make_endpoint(url=other_receiver.url)
    with django_capture_on_commit_callbacks():
        queue(org, 2)
    assert deliver_round([recovered.pk, failing.pk]) == 4
    recovered.refresh_from_db()
    failing.refresh_from_db()
    assert recovered.failing_since is None
    assert failing.failing_since is not None
    outcomes = set(Delivery.objects.values_list("endpoint", "status", "attempts", "last_status_code"))
    assert outcomes == {(recovered.pk, "succeeded", 1, 200), (failing.pk, "failed", 1, 500)}
    assert not Delivery.objects.filter(endpoint=failing, next_attempt_at__isnull=True).exists()


@pytest.mark.django_db
def test_a_round_writes_its_endpoints_rows_in_id_order_as_claims_lock_them(
    org, make_endpoint, receiver, django_capture_on_commit_callbacks
):
    """A record of several endpoints and a claim of several take the endpoints' rows in the same order."""
    first, second = (make_endpoint(failing_since=timezone.now() - timedelta(hours=1)) for _ in range(2))
    with django_capture_on_commit_callbacks():
        queue(org, 1)
    with CaptureQueriesContext(connection) as captured:
        assert deliver_round([second.pk, first.pk]) == 2
    written = [query["sql"] for query in captured if query["sql"].startswith('UPDATE "webhooks_endpoint"')]
    assert len(written) == 2  # both failure clocks cleared
    assert [f'"id" = {first.pk}' in written[0], f'"id" = {second.pk}' in written[1]] == [True, True]


@pytest.mark.django_db
@pytest.mark.requires_redis
def test_a_rolled_back_change_enqueues_nothing_of_its_own(
    org, make_endpoint, broker, django_capture_on_commit_callbacks
):
    make_endpoint()

    def change_that_fails() -> None:
        with transaction.atomic():
            queue(org, 1)
            raise RuntimeError

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        change_that_fails()
    assert Delivery.objects.count() == 0
    assert queued(broker, "webhooks") == []


@pytest.mark.django_db
def test_a_batch_is_claimed_and_recorded_in_the_same_statements_whatever_its_size(
    org, endpoint, receiver, django_capture_on_commit_callbacks
):
    counts = {}
    for size in (2, 12):
        with django_capture_on_commit_callbacks():
            queue(org, size)
        with CaptureQueriesContext(connection) as captured:
            batch = claim_for_endpoint(endpoint.pk)
            attempt_batch(batch)
        assert len(batch) == size
        counts[size] = len(captured)
    assert counts[2] == counts[12]
    assert receiver.wait_for(14)
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}
    assert Attempt.objects.count() == 14


@pytest.mark.django_db
def test_the_endpoint_task_drains_its_queue_in_batches_of_the_allowance(
    org, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 4
    with django_capture_on_commit_callbacks():
        queue(org, 10)
    first = claim_for_endpoint(endpoint.pk)
    assert len(first) == 4  # the allowance, not the backlog
    assert claim_for_endpoint(endpoint.pk) == []  # every slot is taken until the batch is recorded
    attempt_batch(first)
    deliver_endpoint(endpoint.pk)
    assert len(receiver.wait_for(10)) == 10
    assert set(Delivery.objects.values_list("status", "attempts")) == {(Delivery.Status.SUCCEEDED, 1)}


@pytest.mark.django_db
def test_a_claim_takes_the_rows_the_orm_finds_due_oldest_first_with_their_events(
    org, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    """The claim's compiled reads: the same rows, order and event payloads as the ORM's, leased elsewhere skipped."""
    from datetime import timedelta

    from django.utils import timezone

    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 3
    with django_capture_on_commit_callbacks():
        queue(org, 6)
    now = timezone.now()
    rows = list(Delivery.objects.filter(endpoint=endpoint).order_by("id"))
    Delivery.objects.filter(pk=rows[0].pk).update(next_attempt_at=now + timedelta(hours=1))  # not due yet
    Delivery.objects.filter(pk=rows[1].pk).update(locked_until=now + timedelta(minutes=5))  # leased elsewhere
    Delivery.objects.filter(pk=rows[5].pk).update(next_attempt_at=now - timedelta(hours=1))  # due the longest
    expected = list(Delivery.objects.due(timezone.now()).filter(endpoint=endpoint).order_by("next_attempt_at", "id"))
    batch = claim_for_endpoint(endpoint.pk)
    assert [d.pk for d in batch] == [d.pk for d in expected[:2]] == [rows[5].pk, rows[2].pk]  # 3 slots, 1 leased
    assert [d.event.payload["data"]["n"] for d in batch] == [5, 2]
    assert all(d.locked_until > now and d.endpoint == endpoint for d in batch)
    leased = set(Delivery.objects.in_flight(timezone.now()).filter(endpoint=endpoint).values_list("pk", flat=True))
    assert leased == {rows[1].pk, rows[5].pk, rows[2].pk}
    assert claim_for_endpoint(endpoint.pk) == []  # no free slot until the batch is recorded


@pytest.mark.django_db
def test_the_slots_of_answered_deliveries_are_claimed_again_before_those_are_recorded(
    org, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    """A drain claims first and records after, so the record's writes overlap the new requests."""
    from webhooks.delivery import _claim_for_endpoint, drain_endpoint

    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT, settings.WEBHOOK_SEND_THREADS = 3, 4
    with django_capture_on_commit_callbacks():
        queue(org, 8)
    first, _ = _claim_for_endpoint(endpoint.pk)
    assert _claim_for_endpoint(endpoint.pk) == ([], False)  # three leased: no room
    again, full = _claim_for_endpoint(endpoint.pk, answered=2)  # two of them have answered
    assert len(again) == 2
    assert full
    assert {d.pk for d in first}.isdisjoint(d.pk for d in again)
    Delivery.objects.filter(pk__in=[d.pk for d in [*first, *again]]).update(locked_until=None)

    order = []
    claim, finish = _claim_for_endpoint, delivery_module._finish
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(delivery_module, "_claim_for_endpoint", lambda *a, **k: order.append("claim") or claim(*a, **k))
        patch.setattr(delivery_module, "_finish", lambda *a: order.append("record") or finish(*a))
        assert drain_endpoint(endpoint.pk, limit=100) == 8
    assert order.index("record") > order.index("claim", 1)  # the first answers are recorded after a new claim
    assert len(receiver.wait_for(8)) == 8
    assert set(Delivery.objects.values_list("status", "attempts")) == {(Delivery.Status.SUCCEEDED, 1)}


@pytest.mark.django_db
def test_answered_deliveries_are_recorded_even_when_the_next_claim_fails(
    org, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    """Else their leases would end unrecorded, and they would be sent a second time."""
    from django.db import OperationalError

    from webhooks.delivery import drain_endpoint

    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT, settings.WEBHOOK_SEND_THREADS = 2, 4
    with django_capture_on_commit_callbacks():
        queue(org, 4)
    claim, claims = delivery_module._claim_for_endpoint, []

    def failing_second(*args, **kwargs):
        claims.append(kwargs.get("answered", 0))
        if len(claims) == 2:
            raise OperationalError("the database went away")
        return claim(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(delivery_module, "_claim_for_endpoint", failing_second)
        with pytest.raises(OperationalError):
            drain_endpoint(endpoint.pk, limit=100)
    assert claims == [0, 2]  # the second claim came with the first two answered
    done = Delivery.objects.filter(status=Delivery.Status.SUCCEEDED, attempts=1, locked_until__isnull=True)
    assert done.count() == 2
    assert Delivery.objects.filter(status=Delivery.Status.PENDING, attempts=0).count() == 2


@pytest.mark.django_db
def test_a_slow_answer_holds_up_its_own_slot_only(
    org, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 4
    with django_capture_on_commit_callbacks():
        queue(org, 12)
    receiver.reply(delay=30)  # the first request to arrive is answered only once released
    arrived_while_it_hung = []

    def release_once_the_rest_arrived() -> None:
        try:
            arrived_while_it_hung.append(len(receiver.wait_for(12, timeout=5)))
        finally:
            receiver.release.set()

    releaser = threading.Thread(target=release_once_the_rest_arrived)
    releaser.start()
    deliver_endpoint(endpoint.pk)
    releaser.join()
    assert arrived_while_it_hung == [12]  # the other three slots kept sending the rest
    assert set(Delivery.objects.values_list("status", "attempts")) == {(Delivery.Status.SUCCEEDED, 1)}
    assert Attempt.objects.count() == 12


@pytest.mark.django_db
def test_each_delivery_of_a_batch_gets_its_own_outcome(
    org, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_SEND_THREADS = 1  # one after the other, so the scripted replies meet them in order
    with django_capture_on_commit_callbacks():
        queue(org, 3)
    receiver.reply(200)
    receiver.reply(500, "boom")
    receiver.reply(204)
    attempt_batch(claim_for_endpoint(endpoint.pk))
    rows = list(Delivery.objects.order_by("pk").values_list("status", "last_status_code", "attempts"))
    assert rows == [
        (Delivery.Status.SUCCEEDED, 200, 1),
        (Delivery.Status.FAILED, 500, 1),
        (Delivery.Status.SUCCEEDED, 204, 1),
    ]
    failed = Delivery.objects.get(last_status_code=500)
    assert failed.next_attempt_at is not None
    assert failed.locked_until is None
    assert failed.attempt_log.get().response_body == "boom"
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None  # the most recent answer in the batch was not all good


@pytest.mark.django_db
def test_a_retry_that_succeeds_beside_a_first_attempt_keeps_each_ones_count(
    org, endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_SEND_THREADS = 1
    with django_capture_on_commit_callbacks():
        queue(org, 1)
    receiver.reply(500, "boom")
    attempt_batch(claim_for_endpoint(endpoint.pk))
    Delivery.objects.update(next_attempt_at=timezone.now())  # the retry is due
    with django_capture_on_commit_callbacks():
        queue(org, 1)
    attempt_batch(claim_for_endpoint(endpoint.pk))  # the retry and a first attempt, both answered 200
    rows = list(Delivery.objects.order_by("pk").values_list("status", "attempts", "last_status_code", "last_error"))
    assert rows == [(Delivery.Status.SUCCEEDED, 2, 200, ""), (Delivery.Status.SUCCEEDED, 1, 200, "")]
    assert not Delivery.objects.filter(locked_until__isnull=False).exists()
    assert not Delivery.objects.filter(next_attempt_at__isnull=False).exists()


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_task_for_an_endpoint_this_process_is_draining_leaves_it_to_the_drainer(org, endpoint, receiver):
    queue(org, 1)
    receiver.reply(delay=30)  # the first delivery hangs until released
    drained: list[int] = []

    def drain() -> None:
        try:
            drained.append(deliver_endpoint.run(endpoint.pk) or 0)
            drained.append(Delivery.objects.filter(status=Delivery.Status.SUCCEEDED).count())
        finally:
            connection.close()

    drainer = threading.Thread(target=drain)
    drainer.start()
    receiver.wait_for(1)
    queue(org, 2)  # two more commits for the endpoint while its first delivery is out
    with CaptureQueriesContext(connection) as captured:
        deliver_endpoint(endpoint.pk)
        deliver_endpoints([endpoint.pk])
    assert len(captured) == 0  # no claim, so no wait on the endpoint's row lock
    receiver.release.set()
    drainer.join(timeout=20)
    assert len(receiver.wait_for(3)) == 3
    assert drained[1] == 3  # the drainer claimed again for the note before it let go
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}


def round_in_thread(endpoints) -> tuple[threading.Thread, list[int]]:
    """A round for these endpoints, started in a thread of its own; how many it sent lands in the list."""
    rounds: list[int] = []

    def run() -> None:
        try:
            rounds.append(deliver_round([e.pk for e in endpoints]))
        finally:
            connection.close()

    holder = threading.Thread(target=run)
    holder.start()
    return holder, rounds


@pytest.mark.requires_postgres
@pytest.mark.requires_redis
@pytest.mark.django_db(transaction=True)
def test_a_round_sends_the_changes_written_while_it_held_its_endpoints_itself(
    org, make_endpoint, receiver, broker, monkeypatch
):
    """Under load the changes find the endpoints held: they ring their bells and queue no task (a
    task that comes all the same leaves a note); the round that holds them claims again for all
    of them together, instead of a drain task for each. (Its requests are held here until the
    notes are in: the round counts as quick whatever they took.)"""
    monkeypatch.setattr(delivery_module, "ROUND_AGAIN_WITHIN", 60.0)
    endpoints = [make_endpoint(), make_endpoint()]
    queue(org, 1)
    receiver.reply(delay=30)  # the round's first request hangs until released
    holder, rounds = round_in_thread(endpoints)
    receiver.wait_for(2)
    queue(org, 2)  # two more changes for both endpoints while the round's requests are out
    with CaptureQueriesContext(connection) as captured:
        assert deliver_round([e.pk for e in endpoints]) == 0
    assert len(captured) == 0  # no claim: a note for the round
    receiver.release.set()
    holder.join(timeout=20)
    assert rounds == [6]  # its own change's two, then the two changes' four in one more round
    assert len(receiver.wait_for(6)) == 6
    # Only the first change, committed before the round held its endpoints, queued a task (left
    # in the queue: no worker runs); the two written meanwhile rang; no drain was handed on.
    assert [name for name, _ in queued(broker, "webhooks")] == ["webhooks.tasks.deliver_endpoints"]
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}


@pytest.mark.requires_postgres
@pytest.mark.requires_redis
@pytest.mark.django_db(transaction=True)
def test_after_a_slow_round_the_changes_written_meanwhile_go_to_drain_tasks(org, make_endpoint, receiver, broker):
    """A slow endpoint holds up the others for its own change's round only: the changes written
    while its requests were out are handed to a drain task per endpoint."""
    endpoints = [make_endpoint(), make_endpoint()]
    queue(org, 1)
    receiver.reply(delay=30)  # one endpoint's request hangs until released: a slow round
    holder, rounds = round_in_thread(endpoints)
    receiver.wait_for(2)
    queue(org, 1)
    assert deliver_round([e.pk for e in endpoints]) == 0  # a note for the round
    time.sleep(10 * delivery_module.ROUND_AGAIN_WITHIN)  # the held request: surely slower than that
    receiver.release.set()
    holder.join(timeout=20)
    assert rounds == [2]  # its own change only
    drains = sorted(args for name, args in queued(broker, "webhooks") if name == "webhooks.tasks.deliver_endpoint")
    assert drains == sorted((endpoint.pk,) for endpoint in endpoints)


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_claimers_never_exceed_the_endpoint_allowance(org, endpoint, settings):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 5
    queue(org, 30)
    claimed: list[int] = []
    start = threading.Barrier(6)

    def claimer() -> None:
        start.wait()
        try:
            claimed.extend(d.pk for d in claim_for_endpoint(endpoint.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=claimer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == len(set(claimed)) == 5


@pytest.mark.django_db
def test_a_rate_limited_endpoint_is_left_to_the_sweepers_metering(
    org, make_endpoint, receiver, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(rate_limit=1)
    with django_capture_on_commit_callbacks():
        queue(org, 3)
    assert claim_for_endpoint(endpoint.pk) == []
    deliver_endpoint(endpoint.pk)
    assert receiver.received == []
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.PENDING}


@pytest.mark.requires_postgres
@pytest.mark.django_db(transaction=True)
def test_claiming_locks_the_endpoint_but_never_its_organization(org, endpoint):
    """A dispatcher saving the organization's settings must not hold up its webhooks, nor they the dispatcher."""
    queue(org, 2)
    locked, release = threading.Event(), threading.Event()

    def dispatcher() -> None:
        try:
            with transaction.atomic():
                type(org).objects.select_for_update().get(pk=org.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=dispatcher)
    holder.start()
    try:
        assert locked.wait(10)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # a claim that waited for the organization would fail
        try:
            assert len(claim_for_endpoint(endpoint.pk)) == 2
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    finally:
        release.set()
        holder.join()


@pytest.mark.django_db
def test_a_drain_whose_batch_took_everything_due_ends_without_claiming_again(
    org, endpoint, receiver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        queue(org, 3)  # fewer than the allowance: the first claim takes them all
    with CaptureQueriesContext(connection) as captured:
        deliver_endpoint(endpoint.pk)
    assert len(receiver.wait_for(3)) == 3
    claims = [q["sql"] for q in captured.captured_queries if q["sql"].startswith('SELECT "webhooks_endpoint"')]
    assert len(claims) == 1
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}


@pytest.mark.django_db
@pytest.mark.requires_redis
def test_the_sweeper_hands_an_endpoints_backlog_to_a_drain_instead_of_its_next_pass(
    org, endpoint, receiver, broker, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 2
    with django_capture_on_commit_callbacks():  # as if the commit's own task found the sweeper in the slots
        queue(org, 6)
    assert deliver_due() == 2  # the sweeper's pass: the endpoint's free slots
    assert len(receiver.wait_for(2)) == 2
    assert queued(broker, "webhooks") == [("webhooks.tasks.deliver_endpoint", (endpoint.pk,))]
    deliver_endpoint(endpoint.pk)  # what the worker runs for that message
    assert len(receiver.wait_for(6)) == 6
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}


@pytest.mark.django_db
@pytest.mark.requires_redis
def test_a_sweep_that_locked_a_busy_endpoints_rows_hands_them_to_a_drain(
    org, endpoint, receiver, broker, settings, django_capture_on_commit_callbacks
):
    """A drain that claimed while the sweep held those rows locked found fewer than its free slots and ended."""
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 2
    with django_capture_on_commit_callbacks():
        queue(org, 5)
    held = claim_for_endpoint(endpoint.pk)  # the drain's slots are all in flight
    assert deliver_due() == 0  # nothing for the sweep to take, but it locked the other three a moment
    assert queued(broker, "webhooks") == [("webhooks.tasks.deliver_endpoint", (endpoint.pk,))]
    attempt_batch(held)
    deliver_endpoint(endpoint.pk)  # what the worker runs for that message
    assert len(receiver.wait_for(5)) == 5
    assert set(Delivery.objects.values_list("status", flat=True)) == {Delivery.Status.SUCCEEDED}


@pytest.mark.django_db
@pytest.mark.requires_redis
def test_a_sweep_that_took_everything_due_enqueues_nothing(org, endpoint, receiver, broker):
    queue(org, 2)
    assert deliver_due() == 2
    assert len(receiver.wait_for(2)) == 2
    assert queued(broker, "webhooks") == []
