"""kombu's Redis transport, with one redis-py client per connection pool instead of one per command.

kombu's Redis channel builds a `redis.Redis` around its pool for every publish, for every message
a worker takes (recorded as unacknowledged) and for every acknowledgement; each build assembles
redis-py's table of about 165 response callbacks (redis/redis-py#3624), as Django's Redis cache
did (`taskhub.cache`). A message that did nothing cost a thread-pool worker about 2 ms of CPU,
a tenth of it in those builds. A `redis.Redis` is safe to share between threads: each command
and each pipeline takes a connection from the pool. The client kombu keeps for its own polling
(BRPOP on its asynchronous pool) is left as it is.

Used when the broker is Redis (CELERY_BROKER_TRANSPORT in the settings).
"""

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    _shared_client: tuple[object, object] | None = None  # (pool, client)

    def _create_client(self, asynchronous: bool = False):
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        shared = self._shared_client
        if shared is None or shared[0] is not pool:  # a new pool after a reconnection gets a new client
            shared = self._shared_client = (pool, super()._create_client())
        return shared[1]


class Transport(kombu_redis.Transport):
    Channel = Channel
