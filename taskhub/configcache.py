"""Per-process copies of the configuration every change reads: webhook endpoints, notification rules.

Each copy is keyed by the organization's `config_stamp`, which is replaced in the same
transaction as any change to that configuration: saves and deletes through the models'
signals, bulk writes through ConfigQuerySet (the managers of endpoints, template sets and
rules). Every request has just read the organization's row (with its token, or with the task),
so a copy is never older than the row the request works with, and a change is seen by every
process at its next request. What is cached is shared between threads and requests: callers
must not modify it.
"""

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

from django.db import models, transaction

from .models import Organization


class StampedCache:
    """`load(organization, *key)`, remembered per (organization, config_stamp, *key); least recently used go first."""

    def __init__(self, load: Callable[..., Any], size: int = 1024) -> None:
        self._load, self._size = load, size
        self._items: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, organization: Organization, *key: Hashable) -> Any:
        if changed_in_this_transaction(organization.pk):
            return self._load(organization, *key)  # this transaction changed it: read what it wrote
        slot = (organization.pk, organization.config_stamp, *key)
        with self._lock:
            if slot in self._items:
                self._items.move_to_end(slot)
                return self._items[slot]
        value = self._load(organization, *key)
        with self._lock:
            self._items[slot] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return value


class _Changed:
    """Marks, among a transaction's on-commit callbacks, that it changed an organization's configuration."""

    def __init__(self, organization_id: int) -> None:
        self.organization_id = organization_id

    def __call__(self) -> None:
        pass


def changed_in_this_transaction(organization_id: int) -> bool:
    pending = transaction.get_connection().run_on_commit  # emptied by the commit or the rollback
    return any(isinstance(callback, _Changed) and callback.organization_id == organization_id
               for _, callback, _ in pending)  # fmt: skip


def config_changed(organization_id: int, organization: Organization | None = None) -> None:
    """Give the organization a new stamp, in the caller's transaction: every process reads its configuration again.

    `organization`, when the caller holds the organization's object, gets the new stamp too.
    """
    stamp = uuid.uuid4()
    Organization.objects.filter(pk=organization_id).update(config_stamp=stamp)
    if organization is not None:
        organization.config_stamp = stamp
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(_Changed(organization_id))


def changed_with(instance: Any, organization_field: str = "organization") -> None:
    """config_changed() for a configuration row: its organization's object too, when the row holds it."""
    field = type(instance)._meta.get_field(organization_field)
    organization = getattr(instance, organization_field) if field.is_cached(instance) else None
    config_changed(getattr(instance, field.attname), organization)


class ConfigQuerySet(models.QuerySet):
    """Bulk writes to configuration rows renew their organizations' stamps, as saves and deletes do (signals).

    `organization_field` leads from a row to its organization's id; updates of nothing but
    `operational_fields` (an endpoint's failure clock) are not configuration changes.
    """

    organization_field = "organization_id"
    operational_fields: frozenset[str] = frozenset()

    def update(self, **kwargs: Any) -> int:
        if set(kwargs) <= self.operational_fields:
            return super().update(**kwargs)
        with transaction.atomic(savepoint=False):
            organization_ids = set(self.order_by().values_list(self.organization_field, flat=True).distinct())
            updated = super().update(**kwargs)
            for organization_id in organization_ids:
                config_changed(organization_id)
        return updated

    def bulk_create(self, objs, *args: Any, **kwargs: Any) -> list:
        with transaction.atomic(savepoint=False):
            created = super().bulk_create(objs, *args, **kwargs)
            self._changed(created)
        return created

    def bulk_update(self, objs, fields, *args: Any, **kwargs: Any) -> int:
        if set(fields) <= self.operational_fields:
            return super().bulk_update(objs, fields, *args, **kwargs)
        with transaction.atomic(savepoint=False):
            updated = super().bulk_update(objs, fields, *args, **kwargs)
            self._changed(objs)
        return updated

    def _changed(self, objs) -> None:
        if "__" in self.organization_field:  # through a parent row: ask the database
            pks = [obj.pk for obj in objs if obj.pk is not None]
            rows = self.model._default_manager.filter(pk__in=pks).order_by()
            organization_ids = set(rows.values_list(self.organization_field, flat=True))
        else:  # on the rows themselves, with or without their primary keys (ignore_conflicts)
            organization_ids = {getattr(obj, self.organization_field) for obj in objs}
        for organization_id in organization_ids:
            config_changed(organization_id)
