"""Work a transaction collects as it goes and hands on once, when it commits."""

import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.db import transaction


class CommitBatch:
    """Items added during one transaction reach `send` together, in one call, after the commit.

    A change that emits several events (or plans several messages) adds to the batch each time;
    the first addition in a transaction registers the one on-commit callback. A rollback drops
    the callback, and the items left from it are cleared by the next transaction's first
    addition. Outside a transaction the items are sent at once. Per thread, as connections are.
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
        if items:
            self._send(items)
