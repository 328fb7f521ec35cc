"""A one-row lookup compiled once: for hot reads whose SQL is the same every time but for one value.

Compiling a queryset into SQL costs more than running it when the query joins and annotates and
the row comes from an index. `Prepared` compiles its queryset once per thread (a compiler is bound
to its thread's connection), binds the new value in place of a marker, and converts the row with
the compiler's own converters, so the row is what `.values()` would have returned.
"""

import threading
from typing import Any

from django.db.models import QuerySet


class Prepared:
    def __init__(self, build, marker: str) -> None:
        """`build(marker)` returns a `.values()` queryset of at most one row, filtered on `marker`."""
        self.build = build
        self.marker = marker
        self.local = threading.local()

    def compiled(self):
        found = getattr(self.local, "compiled", None)
        if found is None:
            queryset: QuerySet = self.build(self.marker)
            query = queryset.query
            compiler = query.get_compiler(queryset.db)
            sql, params = compiler.as_sql()
            params = list(params)
            if params.count(self.marker) != 1:
                raise ValueError("the marker must be bound exactly once")
            names = [*query.extra_select, *query.values_select, *query.annotation_select]
            found = self.local.compiled = (compiler, sql, params, params.index(self.marker), names)
        return found

    @property
    def db(self) -> str:
        return self.compiled()[0].using

    def first(self, value: Any) -> dict[str, Any] | None:
        """The row for `value`, as `.values()` would give it; None when there is none."""
        compiler, sql, params, at, names = self.compiled()
        bound = [*params]
        bound[at] = value
        with compiler.connection.cursor() as cursor:
            cursor.execute(sql, bound)
            row = cursor.fetchone()
        if row is None:
            return None
        (converted,) = compiler.results_iter(results=[[row]])
        return dict(zip(names, converted, strict=True))
