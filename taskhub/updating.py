"""One row's chosen columns in one UPDATE, for the writes every change makes; the same values into
several rows (`update_rows`).

`Model.save(update_fields=...)` builds its UPDATE anew on each call: for an upsert's customer and
task, compiling it cost more than running it. `save_fields` keeps the statement for each model
and list of fields, and prepares each value with the field's own `pre_save` (so an `auto_now`
column moves) and `get_db_prep_save`, as save() does.

Only where save() would send nothing else: a model with pre_save or post_save receivers, or a
field with a placeholder of its own, is saved by save() itself.
"""

from collections.abc import Iterable
from functools import lru_cache

from django.db import DatabaseError, connections, router
from django.db.models import Field, Model, signals


@lru_cache(maxsize=256)
def _statement(
    model: type[Model], alias: str, names: tuple[str, ...], rows: int
) -> tuple[str, tuple[Field, ...]] | None:
    """The UPDATE of these fields of `rows` rows by their keys, and the fields in order; None where a
    field is not a plain column (save() must do it)."""
    opts = model._meta
    fields = tuple(opts.get_field(name) for name in names)
    if any(not f.concrete or f.primary_key or f.generated or hasattr(f, "get_placeholder") for f in fields):
        return None
    quote = connections[alias].ops.quote_name
    columns = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    table, key = quote(opts.db_table), quote(opts.pk.column)
    keys = "= %s" if rows == 1 else f"IN ({', '.join(['%s'] * rows)})"
    return f"UPDATE {table} SET {columns} WHERE {key} {keys}", fields  # noqa: S608 - names from the model


def save_fields(obj: Model, names: Iterable[str]) -> None:
    """`obj.save(update_fields=names)` for an existing row, without building the statement each time."""
    model = type(obj)
    names = tuple(dict.fromkeys(names))
    alias = router.db_for_write(model, instance=obj)
    found = _statement(model, alias, names, 1)
    if found is None or signals.pre_save.has_listeners(model) or signals.post_save.has_listeners(model):
        obj.save(update_fields=names)
        return
    sql, fields = found
    connection = connections[alias]
    obj._prepare_related_fields_for_save(operation_name="save")
    params = [field.get_db_prep_save(field.pre_save(obj, False), connection) for field in fields]
    params.append(model._meta.pk.get_db_prep_value(obj.pk, connection))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != 1:
            raise DatabaseError("Save with update_fields did not affect any rows.")


def update_rows(model: type[Model], pks: list, **values) -> int:
    """`model.objects.filter(pk__in=pks).update(**values)` for plain values, without building the
    statement each time; how many rows it changed."""
    if not pks:
        return 0
    alias = router.db_for_write(model)
    connection = connections[alias]
    found = _statement(model, alias, tuple(values), len(pks))
    if found is None:
        raise ValueError(f"update_rows writes plain columns of {model.__name__}")
    sql, fields = found
    params = [field.get_db_prep_save(values[field.name], connection) for field in fields]
    params += [model._meta.pk.get_db_prep_value(pk, connection) for pk in pks]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
