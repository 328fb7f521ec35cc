"""What a transaction collects is handed on once after its commit, and during a request after the response."""

import logging

import pytest
from django.core.signals import request_finished, request_started
from django.db import transaction

from taskhub.logs import current_request_id, request_id_var
from taskhub.oncommit import CommitBatch

pytestmark = pytest.mark.django_db(transaction=True)  # real commits, so on-commit callbacks run


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[list, str | None]] = []

    def __call__(self, items: list) -> None:
        self.calls.append((items, current_request_id()))


def test_outside_a_request_the_items_go_at_the_commit_together():
    sent = Recorder()
    batch = CommitBatch(sent)
    with transaction.atomic():
        batch.add([1, 2])
        batch.add([3])
        assert sent.calls == []
    assert [items for items, _ in sent.calls] == [[1, 2, 3]]


def test_a_rolled_back_transactions_items_are_never_sent():
    sent = Recorder()
    batch = CommitBatch(sent)

    def change_then_fail() -> None:
        with transaction.atomic():
            batch.add([1])
            raise RuntimeError

    with pytest.raises(RuntimeError):
        change_then_fail()
    with transaction.atomic():
        batch.add([2])
    assert [items for items, _ in sent.calls] == [[2]]


def test_during_a_request_they_go_after_the_response_with_the_requests_id():
    sent = Recorder()
    batch = CommitBatch(sent)
    request_started.send(sender=None)
    token = request_id_var.set("req-after-response")
    try:
        with transaction.atomic():
            batch.add(["a"])
        with transaction.atomic():
            batch.add(["b"])
        assert sent.calls == []  # committed, but the response is not out yet
    finally:
        request_id_var.reset(token)
        request_finished.send(sender=None)
    assert sent.calls == [(["a"], "req-after-response"), (["b"], "req-after-response")]
    with transaction.atomic():
        batch.add(["c"])  # the request is over: at the commit again
    assert sent.calls[-1] == (["c"], None)


def test_a_send_that_fails_after_the_response_is_logged_and_the_others_still_go(caplog):
    def broken(items: list) -> None:
        raise ConnectionError("broker down")

    sent = Recorder()
    first, second = CommitBatch(broken), CommitBatch(sent)
    request_started.send(sender=None)
    try:
        with transaction.atomic():
            first.add([1])
            second.add([2])
    finally:
        with caplog.at_level(logging.ERROR, logger="taskhub.oncommit"):
            request_finished.send(sender=None)
    assert [items for items, _ in sent.calls] == [[2]]
    assert "after the response" in caplog.text


def test_a_request_whose_end_was_never_signalled_still_has_its_items_sent():
    sent = Recorder()
    batch = CommitBatch(sent)
    request_started.send(sender=None)
    with transaction.atomic():
        batch.add(["left over"])
    request_started.send(sender=None)  # the next request on this thread, without a request_finished
    assert [items for items, _ in sent.calls] == [["left over"]]
    request_finished.send(sender=None)
