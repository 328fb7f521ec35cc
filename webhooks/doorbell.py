"""Which endpoints a worker is sending to right now, known to every process through Redis.

Under load one change follows another to the same endpoints. Each commit used to queue a task;
most of them found the endpoints held by a worker thread that would claim again anyway, left a
note and ended, or came after that thread had claimed their rows and found nothing: a publish in
the request, a task in the worker and often an empty claim, for nothing. Now a worker sending to
an endpoint holds its *drain* key, and a commit *rings* the endpoint's bell: where the drain key
is held, the commit queues no task, and the holder claims again before it lets go.

The two sides meet in Redis, each step atomic, so a ring is either heard by a holder or answered
by a task, never lost:

- ring: set the bell and read whether the drain key is held, in one script for all the commit's
  endpoints (the commit is done by then, so a claim that follows the bell sees its rows);
- take: hold the drain key and silence the bell, or, when another holds it, ring;
- heard: silence the bell (before claiming again) and keep holding;
- hand back: let go only if the bell is silent, else keep holding and say so;
- release: let go, and say whether the bell rang (the caller hands that on to a task).

The drain key expires HOLD after its holder last touched it, so a worker that died holding it
delays its endpoints' next changes to the sweeper for that long at most. Without Redis (the
embedded set-up) every commit queues its task, as does a commit that finds Redis unreachable.
"""

import logging
import time
from collections.abc import Sequence

import redis
from django.conf import settings

from taskhub.ratelimit import redis_client

logger = logging.getLogger(__name__)

HOLD_MS = 30_000  # a drain key's life after its holder last touched it
TOUCH_EVERY = HOLD_MS / 3000  # seconds: how often a long drain renews its key

# Each script takes KEYS as (drain, bell) pairs, one pair an endpoint, and answers 1 or 0 for each.


def _each_endpoint(body: str) -> str:
    """A script that runs `body` for each (drain, bell) pair of KEYS and answers, for each, the
    `answer` that `body` set (ARGV[1]: how long a key lives, in milliseconds)."""
    return f"""
local answers = {{}}
for i = 1, #KEYS, 2 do
  local drain, bell, answer = KEYS[i], KEYS[i + 1], 0
{body}
  answers[#answers + 1] = answer
end
return answers
"""


TAKE = _each_endpoint("""
  if redis.call('SET', drain, '1', 'NX', 'PX', ARGV[1]) then
    redis.call('DEL', bell)
    answer = 1
  else
    redis.call('SET', bell, '1', 'PX', ARGV[1])
  end""")

HEARD = _each_endpoint("""
  answer = redis.call('DEL', bell)
  redis.call('PEXPIRE', drain, ARGV[1])""")

HAND_BACK = _each_endpoint("""
  if redis.call('DEL', bell) == 1 then
    redis.call('PEXPIRE', drain, ARGV[1])
    answer = 1
  else
    redis.call('DEL', drain)
  end""")

RING = _each_endpoint("""
  redis.call('SET', bell, '1', 'PX', ARGV[1])
  answer = redis.call('EXISTS', drain)""")

RELEASE = _each_endpoint("""
  answer = redis.call('DEL', bell)
  redis.call('DEL', drain)""")

_scripts: dict[str, redis.commands.core.Script] = {}


def enabled() -> bool:
    return bool(settings.REDIS_URL)


def _client() -> redis.Redis:
    return redis_client(settings.REDIS_URL)


def _script(source: str):
    script = _scripts.get(source)
    if script is None:
        script = _scripts[source] = _client().register_script(source)
    return script


def _keys(endpoint_id: int) -> list[str]:
    """The endpoint's drain key and bell, named after the database, as several sites may share a Redis."""
    prefix = f"taskhub:webhooks:{settings.DATABASES['default']['NAME']}:{endpoint_id}"
    return [f"{prefix}:drain", f"{prefix}:bell"]


def _run(source: str, endpoint_ids: Sequence[int], *, without: bool, failed: bool, why: str) -> list[bool]:
    """One script call for all the endpoints: what it answered for each. Without Redis (or without
    endpoints) each answer is `without`; when Redis fails, `failed`, and `why` goes to the log."""
    if not enabled() or not endpoint_ids:
        return [without] * len(endpoint_ids)
    keys = [key for endpoint_id in endpoint_ids for key in _keys(endpoint_id)]
    try:
        return [bool(answer) for answer in _script(source)(keys=keys, args=[HOLD_MS], client=_client())]
    except (redis.RedisError, OSError):
        logger.warning("Webhook doorbell unavailable; %s.", why, exc_info=True)
        return [failed] * len(endpoint_ids)


def ring(endpoint_ids: Sequence[int]) -> list[int]:
    """After a commit: ring each endpoint's bell. The endpoints no worker holds: they need a task."""
    held = _run(RING, endpoint_ids, without=False, failed=False, why="queueing a task for each endpoint")
    return [endpoint_id for endpoint_id, rung in zip(endpoint_ids, held, strict=True) if not rung]


def take(endpoint_ids: Sequence[int]) -> list[bool]:
    """Hold each endpoint's drain key; False, and its bell rung for the holder, where another holds it."""
    return _run(TAKE, endpoint_ids, without=True, failed=True, why="sending without it")


def heard(endpoint_ids: Sequence[int]) -> list[bool]:
    """Silence each endpoint's bell, and keep holding it: True where it rang (claim again)."""
    return _run(HEARD, endpoint_ids, without=False, failed=False, why="the sweeper sends what rang meanwhile")


def hand_back(endpoint_id: int) -> bool:
    """Let go of the endpoint unless its bell rang: True means it rang, and it is still held."""
    return _run(HAND_BACK, [endpoint_id], without=False, failed=False, why="the sweeper sends what rang meanwhile")[0]


def release(endpoint_ids: Sequence[int]) -> list[bool]:
    """Let go of each endpoint: True where its bell rang since it was last heard (hand that on)."""
    return _run(RELEASE, endpoint_ids, without=False, failed=True, why="handing the endpoints on")


def touch(endpoint_id: int, last: float) -> float:
    """Renew a long drain's key every TOUCH_EVERY seconds; returns when it was last renewed."""
    now = time.monotonic()
    if not enabled() or now - last < TOUCH_EVERY:
        return last
    try:
        _client().pexpire(_keys(endpoint_id)[0], HOLD_MS)
    except (redis.RedisError, OSError):
        logger.warning("Webhook doorbell unavailable.", exc_info=True)
    return now
