"""Django's Redis cache, with one redis-py client per connection pool instead of one per call.

Django's client builds a `redis.Redis` around its pool for every get and set, and each build
assembles redis-py's table of about 165 response callbacks (redis/redis-py#3624): 0.2 ms of CPU
an operation, more than the round trip itself. A `redis.Redis` is safe to share between threads:
each command takes a connection from the pool.
"""

from django.core.cache.backends import redis as django_redis


class RedisCacheClient(django_redis.RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    """`django.core.cache.backends.redis.RedisCache` with RedisCacheClient above."""

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = RedisCacheClient
