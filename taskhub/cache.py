"""Django's Redis cache, with one redis-py client per connection pool instead of one per call,
and `get_or_note` for values worth sharing only once they are asked for twice.

Django's client builds a `redis.Redis` around its pool for every get and set, and each build
assembles redis-py's table of about 165 response callbacks (redis/redis-py#3624): 0.2 ms of CPU
an operation, more than the round trip itself. A `redis.Redis` is safe to share between threads:
each command takes a connection from the pool.
"""

from typing import Any

from django.core.cache import BaseCache
from django.core.cache.backends import redis as django_redis

NOTE = b"\x00asked"  # left where a value was asked for and missing; no serialized value starts with a NUL

# The value under KEYS[1]; else leave the note there (ARGV: the note, its life in seconds) and answer nil.
GET_OR_NOTE = """
local found = redis.call('GET', KEYS[1])
if not found then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
end
return found
"""


def get_or_note(cache: BaseCache, key: str, timeout: int) -> tuple[Any, bool]:
    """(value, True) when `key` holds one; else (None, whether it was asked for within `timeout`).

    A miss leaves a note that it was asked for, so that the next miss, in any process, knows the
    value is wanted more than once: "cache on the second hit". A value built for one reader is
    then never written to the shared cache at all. On Redis the read and the note are one round
    trip, and the note stands in the value's own key (which only `get_or_note` may read until the
    value is set there); elsewhere the note is a key of its own.
    """
    own = getattr(cache, "get_or_note", None)  # RedisCache's, also through django.core.cache.cache
    if own is not None:
        return own(key, timeout)
    found = cache.get(key)
    if found is not None:
        return found, True
    return None, not cache.add(f"{key}:asked", True, timeout)


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}
        self._scripts: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client

    def get_or_note(self, key: str, timeout: int) -> tuple[Any, bool]:
        client = self.get_client(key, write=True)
        script = self._scripts.get(id(client))
        if script is None:
            script = self._scripts[id(client)] = client.register_script(GET_OR_NOTE)
        found = script(keys=[key], args=[NOTE, max(1, int(timeout))])
        if found is None:
            return None, False
        if found == NOTE:
            return None, True
        return self._serializer.loads(found), True


class RedisCache(django_redis.RedisCache):
    """`django.core.cache.backends.redis.RedisCache` with RedisCacheClient above."""

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient

    def get_or_note(self, key: str, timeout: int, version: int | None = None) -> tuple[Any, bool]:
        return self._cache.get_or_note(self.make_and_validate_key(key, version=version), timeout)
