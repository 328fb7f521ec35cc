"""Queries compiled once: for hot reads and deletes whose SQL is the same every time but for a few values.

Compiling a queryset into SQL can cost more than running it, when the query joins and annotates
and its rows come from an index. `Prepared` compiles its queryset once per thread (a compiler is
bound to its thread's connection), binds new values in place of markers, and converts the rows
with the converters the compiler chose, so each row is what `.values()` would have returned.
`PreparedDelete` does the same for the DELETE the queryset's `delete()` would run.
"""

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db.models import Model, QuerySet, sql
from django.db.models.deletion import Collector
from django.db.transaction import TransactionManagementError


class _CompiledOnce(ABC):
    """A query compiled once per thread from a queryset filtered on markers; subclasses compile it."""

    def __init__(self, build: Callable[..., QuerySet], *markers: Any) -> None:
        """`build(*markers)` returns a queryset filtered on the markers: values no real query would
        bind, each appearing once among the compiled parameters, and each within its column's
        range (Django drops a comparison with a value no column value could fail). A datetime
        marker compares with a DateTimeField, and is bound as the backend adapts it."""
        self.build = build
        self.markers = markers
        self.local = threading.local()

    def compiled(self) -> tuple:
        found = getattr(self.local, "compiled", None)
        if found is None:
            found = self.local.compiled = self._compile(self.build(*self.markers))
        return found

    @abstractmethod
    def _compile(self, queryset: QuerySet) -> tuple: ...


class Prepared(_CompiledOnce):
    """A `.values()` read compiled once per thread; its rows are what the queryset would give."""

    def _compile(self, queryset: QuerySet) -> tuple:
        query = queryset.query
        compiler = query.get_compiler(queryset.db)
        statement, params = compiler.as_sql()
        params = list(params)
        slots = _slots(compiler.connection, params, self.markers)
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        fields = [selected[0] for selected in compiler.select[: compiler.col_count]]
        if compiler.has_composite_fields(fields):
            raise ValueError("composite fields are not supported")
        converters = compiler.get_converters(fields)
        return compiler, statement, params, slots, names, converters

    @property
    def db(self) -> str:
        return self.compiled()[0].using

    def rows(self, *values: Any) -> list[dict[str, Any]]:
        """The rows for `values` (in the order of the markers), as `.values()` would give them."""
        compiler, statement, params, slots, names, converters = self.compiled()
        if compiler.query.select_for_update and compiler.connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        with compiler.connection.cursor() as cursor:
            cursor.execute(statement, _bound(compiler.connection, params, slots, values))
            found = cursor.fetchall()
        if converters:
            found = compiler.apply_converters(found, converters)
        return [dict(zip(names, row, strict=True)) for row in found]

    def first(self, *values: Any) -> dict[str, Any] | None:
        found = self.rows(*values)
        return found[0] if found else None


class PreparedDelete(_CompiledOnce):
    """A DELETE compiled once per thread from a queryset filtered on markers, as `Prepared` compiles reads.

    Only for rows the ORM would delete with one plain DELETE too: no signal receivers, nothing
    that refers to them (checked when it is compiled), as `QuerySet.delete()`'s fast path.
    """

    def _compile(self, queryset: QuerySet) -> tuple:
        if not Collector(using=queryset.db, origin=queryset).can_fast_delete(queryset):
            raise ValueError(f"{queryset.model.__name__} rows need the ORM's delete (signals or relations)")
        compiler = queryset.query.chain(sql.DeleteQuery).get_compiler(queryset.db)  # as QuerySet._raw_delete
        statement, params = compiler.as_sql()
        params = list(params)
        return compiler.connection, statement, params, _slots(compiler.connection, params, self.markers)

    def run(self, *values: Any) -> int:
        """Delete the rows `values` (in the order of the markers) select; how many there were."""
        connection, statement, params, slots = self.compiled()
        with connection.cursor() as cursor:
            cursor.execute(statement, _bound(connection, params, slots, values))
            return cursor.rowcount


def _slots(connection, params: list, markers: tuple) -> list[int]:
    """Where each marker is bound among the compiled parameters: exactly once each."""
    slots = []
    for marker in markers:
        marker = _adapted(connection, marker)
        at = [i for i, param in enumerate(params) if param == marker and not isinstance(param, bool)]
        if len(at) != 1:
            raise ValueError(f"marker {marker!r} is bound {len(at)} times, not once")
        slots.append(at[0])
    return slots


def _bound(connection, params: list, slots: list[int], values: tuple) -> list:
    bound = [*params]
    for at, value in zip(slots, values, strict=True):
        value = _adapted(connection, value)
        kind = type(params[at])  # wrapped as the backend wrapped the marker (psycopg: Int8)
        bound[at] = value if type(value) is kind else kind(value)
    return bound


def _adapted(connection, value: Any) -> Any:
    """A datetime as the backend binds it to a DateTimeField (SQLite: a naive string)."""
    return connection.ops.adapt_datetimefield_value(value) if isinstance(value, datetime) else value


def columns(model: type[Model], names: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The model's columns (attnames), or `names` in column order, as `Model.from_db` takes them."""
    ordered = tuple(f.attname for f in model._meta.concrete_fields if names is None or f.attname in names)
    if names is not None and len(ordered) != len(names):
        raise ValueError(f"{model.__name__} has no column {sorted(set(names) - set(ordered))}")
    return ordered


def from_row(model: type[Model], row: dict[str, Any], db: str, names: tuple[str, ...], prefix: str = ""):
    """The instance a joined `.values()` row holds under `prefix` (None for a missing outer join),
    with the columns not in `names` deferred, as select_related and only() would give it."""
    if row[f"{prefix}{model._meta.pk.attname}"] is None:
        return None
    return model.from_db(db, names, [row[f"{prefix}{name}"] for name in names])
