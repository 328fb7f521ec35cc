"""When to try a failed delivery again: a pure function of the failure count."""

import random
from datetime import timedelta

# Wait before attempt n+1 (index n). The first attempt is immediate; ten attempts span ~3 days.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
JITTER = 0.2
THROTTLED_MINIMUM = timedelta(seconds=60)
RETRY_AFTER_MAXIMUM = timedelta(hours=24)


def retry_delay(
    failures: int,
    *,
    throttled: bool = False,
    retry_after: timedelta | None = None,
    rng: random.Random | None = None,
) -> timedelta | None:
    """The wait after `failures` failed attempts, ±20% jitter; None when the schedule is spent.

    A throttled answer (429, 502, 504, timeout) waits at least a minute, longer if the
    receiver's Retry-After asks for it (up to a day).
    """
    if failures >= len(RETRY_SCHEDULE):
        return None
    base = RETRY_SCHEDULE[failures]
    delay = base * (rng or random).uniform(1 - JITTER, 1 + JITTER)
    if throttled:
        wanted = min(max(retry_after or timedelta(0), THROTTLED_MINIMUM), RETRY_AFTER_MAXIMUM)
        delay = max(delay, wanted)
    return delay
