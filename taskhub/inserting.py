"""New rows of one model in one INSERT, for the writes every change makes.

`QuerySet.bulk_create` spent about a millisecond of CPU writing three deliveries, five times what
sending and running the statement costs: most of it goes to building the statement. A change
writes its task, journal entry, addresses, crew, events, deliveries and messages, so
`insert_all` keeps the statement for each model and row count, and prepares each value with the
field's own `pre_save` and `get_db_prep_save`, as bulk_create does; that halves the cost. Rows
come back with the keys the database assigned, read from `RETURNING` in the order they were
given, as bulk_create's are.

Only for plain inserts: no conflict handling and no signals (bulk_create sends none either).
Where the database computes a value other than an assigned key (a generated column, a database
default), or cannot return the keys of a multi-row insert, bulk_create does the work.
"""

from collections.abc import Sequence
from functools import lru_cache

from django.db import connections, router
from django.db.models import NOT_PROVIDED, Model


@lru_cache(maxsize=256)
def _statement(model: type[Model], alias: str, count: int) -> tuple[str, tuple, bool]:
    """The INSERT of `count` rows, the fields in its column order, and whether it returns the keys."""
    opts = model._meta
    quote = connections[alias].ops.quote_name
    returning = opts.pk.db_returning  # a key the database assigns (an AutoField) comes back
    fields = tuple(f for f in opts.concrete_fields if not f.generated and not (returning and f.primary_key))
    columns = ", ".join(quote(f.column) for f in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    table = quote(opts.db_table)
    sql = f"INSERT INTO {table} ({columns}) VALUES {', '.join([row] * count)}"  # noqa: S608 - names from the model
    if returning:
        sql += f" RETURNING {quote(opts.pk.column)}"
    return sql, fields, returning


@lru_cache(maxsize=256)
def _plain(model: type[Model]) -> bool:
    """No value the database computes but the primary key: what one INSERT of prepared values can write."""
    return not any(
        f.generated or f.db_default is not NOT_PROVIDED or (f.db_returning and not f.primary_key)
        for f in model._meta.concrete_fields
    )


def insert_all[M: Model](objs: Sequence[M]) -> Sequence[M]:
    """INSERT `objs` (new instances of one model) in one statement; sets the keys the database assigns.

    More rows than the backend takes parameters for go in batches of the size bulk_create uses.
    """
    if not objs:
        return objs
    model = type(objs[0])
    alias = router.db_for_write(model)
    connection = connections[alias]
    if not connection.features.can_return_rows_from_bulk_insert or not _plain(model):
        return model._default_manager.bulk_create(objs)
    for obj in objs:
        if type(obj) is not model or (model._meta.pk.db_returning and obj.pk is not None):
            raise ValueError("insert_all takes new instances of one model")
    fields = _statement(model, alias, 1)[1]
    # bulk_create's batches (SQLite: 999 parameters), and at most the 65,535 a bound statement takes.
    most = (connection.features.max_query_params or 65535) // max(1, len(fields))
    size = max(1, min(connection.ops.bulk_batch_size(fields, objs), most))
    for start in range(0, len(objs), size):
        _insert(model, alias, objs[start : start + size])
    return objs


def _insert(model: type[Model], alias: str, objs: Sequence[Model]) -> None:
    connection = connections[alias]
    sql, fields, returning = _statement(model, alias, len(objs))
    params = []
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="insert_all")
        params.extend(field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        keys = cursor.fetchall() if returning else None
    pk = model._meta.pk
    if keys is not None:
        column = pk.get_col(model._meta.db_table)
        converters = pk.get_db_converters(connection) + connection.ops.get_db_converters(column)
        for obj, (key,) in zip(objs, keys, strict=True):
            for converter in converters:
                key = converter(key, pk, connection)
            obj.pk = key
    for obj in objs:
        obj._state.adding = False
        obj._state.db = alias
