"""What one unit of the machine's work costs, measured at the start of each run.

The host is shared and changes between runs: the same code has cost three times the CPU a
request on one machine that it cost on another. The ratios in the table stay comparable; the
rates do not. These four costs, taken on the quiet machine before the servers start, say
which kind of machine a run had: how fast it runs Python, what a round trip to Redis and to
PostgreSQL costs (on some virtual machines every system call is dear), and how long PostgreSQL
takes to make a commit durable.
"""

import time
from collections.abc import Callable

import psycopg
import redis

PROBE_TABLE = "bench_probe"


def _python_work() -> int:
    total = 0
    for n in range(2000):
        total += n * n % 7
    return total


def _each(count: int, action: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU microseconds per call, after a few unmeasured ones."""
    for _ in range(max(1, count // 20)):
        action()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        action()
    return (time.perf_counter() - wall) / count * 1e6, (time.process_time() - cpu) / count * 1e6


def probe(database_url: str, redis_url: str, quick: bool = False) -> dict[str, float]:
    """The four costs (microseconds): Python work, a Redis round trip (wall, and this process's
    CPU), a PostgreSQL round trip, and a one-row INSERT and its COMMIT."""
    scale = 4 if quick else 1
    found: dict[str, float] = {}
    found["python_us"] = round(_each(2000 // scale, _python_work)[1], 1)
    client = redis.Redis.from_url(redis_url)
    try:
        wall, cpu = _each(2000 // scale, client.ping)
    finally:
        client.close()
    found["redis_round_trip_us"], found["redis_round_trip_cpu_us"] = round(wall, 1), round(cpu, 1)
    with psycopg.connect(database_url, autocommit=True) as connection:
        found["postgresql_round_trip_us"] = round(_each(2000 // scale, lambda: connection.execute("SELECT 1"))[0], 1)
        connection.execute(f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (id bigserial PRIMARY KEY, n int)")
        try:
            found["postgresql_commit_us"] = round(
                _each(300 // scale, lambda: connection.execute(f"INSERT INTO {PROBE_TABLE} (n) VALUES (1)"))[0], 1
            )
        finally:
            connection.execute(f"DROP TABLE {PROBE_TABLE}")
    return found


def describe(found: dict[str, float]) -> str:
    """One line for the report."""
    if not found:
        return "machine probe: not taken"
    return (
        f"machine probe: Python work unit {found['python_us']:.0f} µs of CPU; "
        f"Redis round trip {found['redis_round_trip_us']:.0f} µs ({found['redis_round_trip_cpu_us']:.0f} µs of "
        f"the client's CPU); PostgreSQL round trip {found['postgresql_round_trip_us']:.0f} µs; "
        f"INSERT and durable COMMIT {found['postgresql_commit_us'] / 1000:.2f} ms"
    )
