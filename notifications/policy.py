"""Pure rules of when a message may go: quiet hours and the retry schedule."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Wait before attempt n+1 after n failures; five attempts in all.
RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=30),
    timedelta(minutes=2),
    timedelta(minutes=10),
    timedelta(hours=1),
)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1


def retry_delay(failures: int) -> timedelta | None:
    """The wait after `failures` failed attempts; None when no attempt is left."""
    if failures < 1 or failures > len(RETRY_SCHEDULE):
        return None
    return RETRY_SCHEDULE[failures - 1]


def in_quiet_hours(local: time, start: time, end: time) -> bool:
    """True inside [start, end), a window that may run over midnight; start == end means none."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(now: datetime, tz: ZoneInfo, start: time, end: time) -> datetime | None:
    """When the quiet hours around `now` end (an aware datetime), or None when `now` is not in them."""
    local = now.astimezone(tz)
    if not in_quiet_hours(local.time(), start, end):
        return None
    day: date = local.date()
    opening = datetime.combine(day, end, tzinfo=tz)
    if opening <= local:
        opening = datetime.combine(day + timedelta(days=1), end, tzinfo=tz)
    return opening


def start_of_day(now: datetime, tz: ZoneInfo) -> datetime:
    """Midnight of `now`'s day in `tz`: where a daily cap's count starts."""
    return datetime.combine(now.astimezone(tz).date(), time(0), tzinfo=tz)
