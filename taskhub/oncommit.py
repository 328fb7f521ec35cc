"""Work a transaction collects as it goes and hands on once, when it commits."""

import contextvars
import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.core.signals import request_finished, request_started
from django.db import transaction

logger = logging.getLogger(__name__)

# Per thread, while it serves a request: the sends its commits left for after the response.
_after_response = threading.local()


class CommitBatch:
    """Items added during one transaction reach `send` together, in one call, after the commit.

    A change that emits several events (or plans several messages) adds to the batch each time;
    the first addition in a transaction registers the one on-commit callback. A rollback drops
    the callback, and the items left from it are cleared by the next transaction's first
    addition. Outside a transaction the items are sent at once. Per thread, as connections are.

    During a request the send waits until the response has gone out (`request_finished`): the
    client does not wait for the broker, and the workers the send wakes do not compete for the
    CPU with the rest of the request. Should the process die in between, the sweepers send what
    was committed, as they do when the broker is down.
    """

    def __init__(self, send: Callable[[list[Any]], None]) -> None:
        self._send = send
        self._local = threading.local()

    def add(self, items: Iterable[Any]) -> None:
        items = list(items)
        if not items:
            return
        registered = any(callback == self._flush for _, callback, _ in transaction.get_connection().run_on_commit)
        if not registered:
            self._local.items = []  # anything here is from a transaction that rolled back
        self._local.items.extend(items)
        if not registered:
            transaction.on_commit(self._flush)  # outside a transaction this runs at once

    def _flush(self) -> None:
        items, self._local.items = getattr(self._local, "items", []), []
        if not items:
            return
        waiting = getattr(_after_response, "sends", None)
        if waiting is None:
            self._send(items)
        else:  # with the context of the commit: the request's id goes into the messages' headers
            waiting.append((contextvars.copy_context(), self._send, items))


def _request_started(**kwargs: Any) -> None:
    _request_finished()  # a previous request whose end was never signalled: its sends still go
    _after_response.sends = []


def _request_finished(**kwargs: Any) -> None:
    """The response is out: hand on what the request's commits collected."""
    sends, _after_response.sends = getattr(_after_response, "sends", None) or [], None
    for context, send, items in sends:
        try:
            context.run(send, items)
        except Exception:  # the rows are committed: the sweepers send them
            logger.exception("Could not hand on %d item(s) after the response.", len(items))


request_started.connect(_request_started, dispatch_uid="taskhub.oncommit.request_started")
request_finished.connect(_request_finished, dispatch_uid="taskhub.oncommit.request_finished")
