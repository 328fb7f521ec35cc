"""`python -m bench` / `make bench`: start the production shape, seed, measure every row, print the table.

BENCH_QUICK=1 for one short run per row; BENCH_SCALE=1m for a million tasks; BENCH_ONLY=rows to
pick rows (throughput,queries,fanout,delivery,admin,headroom). See docs/performance.md.
"""

import json
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from .config import RESULTS_DIR, ROOT, Config, server_env
from .probe import describe, probe
from .stats import Row, markdown_table

ROW_ORDER = ("throughput", "queries", "fanout", "delivery", "admin", "headroom")


def machine() -> dict:
    def first(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "unknown"

    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024**2, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "postgresql": first(["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", "SHOW server_version"]),
        "redis": first(["redis-cli", "-h", "127.0.0.1", "INFO", "server"]) and _redis_version(),
        "load_average_at_start": os.getloadavg(),
    }


def _redis_version() -> str:
    out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "INFO", "server"], capture_output=True, text=True, timeout=10)
    return next(
        (line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if line.startswith("redis_version")),
        "unknown",
    )


def setup_django(config: Config) -> dict[str, str]:
    env = {**os.environ, **server_env(config)}
    os.environ.update(server_env(config))
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request would drown the report
    return env


def main() -> int:
    config = Config()
    started = time.monotonic()
    env = setup_django(config)
    from django.db import connections

    from . import context as ctx
    from . import db, servers
    from .delivery import measure_delivery
    from .queries import measure_queries
    from .rows import measure_admin, measure_fanout, measure_headroom, measure_throughput
    from .seed import seed

    print(f"bench: scale {config.scale}, {config.runs} run(s) per row, quick={config.quick}", flush=True)
    facts = machine()

    def seed_into() -> None:
        print(f"bench: seeding {config.persons:,} persons and {config.tasks:,} tasks (once per scale)", flush=True)
        seed(slug=ctx.ORG, persons=config.persons, tasks=config.tasks)
        connections.close_all()

    prepared = db.prepare(config, env, seed_into)
    db.collectstatic(env)
    try:  # on the quiet machine, before the servers start
        facts["probe"] = probe(config.database_url, config.redis_url, quick=config.quick)
    except Exception as exc:
        facts["probe"] = {}
        print(f"bench: machine probe failed: {exc!r}", flush=True)
    print(f"bench: {describe(facts['probe'])}", flush=True)
    context = ctx.build(config, env)
    processes = context.processes
    rows: list[Row] = []
    raw: dict = {"prepare": prepared}
    try:
        processes["sink"] = servers.start_sink(config)
        processes["mail-sink"] = servers.start_mail_sink(config)
        processes["gunicorn"] = servers.start_gunicorn(config, env)
        workers = servers.start_workers(config, env)
        processes.update((worker.name, worker) for worker in workers)
        processes["beat"] = servers.start_beat(env)
        from taskhub.celery import app

        servers.wait_workers(app, len(workers))
        print(f"bench: servers up after {time.monotonic() - started:.0f} s", flush=True)
        queries = {}
        steps = [
            ("queries", lambda: measure_queries(context)),
            ("throughput", lambda: measure_throughput(context)),
            ("delivery", lambda: measure_delivery(context)),
            ("admin", lambda: measure_admin(context)),
            ("headroom", lambda: measure_headroom(context)),
            ("fanout", lambda: measure_fanout(context, raw.get("headroom"))),
        ]
        for name, step in steps:
            if not config.wants(name) and not (name == "queries" and config.wants("throughput")):
                continue
            print(f"bench: {name} …", flush=True)
            left = servers.wait_idle(config.redis_url, 15 if config.quick else 120)
            raw.setdefault("backlog_before", {})[name] = left
            step_started = time.monotonic()
            try:
                raw[name] = step()
            except Exception as exc:
                traceback.print_exc()
                raw[name] = {"error": repr(exc)}
            print(f"bench: {name} done in {time.monotonic() - step_started:.0f} s", flush=True)
        queries = raw.get("queries") if isinstance(raw.get("queries"), dict) and "error" not in raw["queries"] else {}
        rows = table_rows(raw, context, queries)
    finally:
        for process in reversed(list(processes.values())):  # beat and the workers before what they talk to
            process.stop()
    table = markdown_table(rows)
    print("\n" + table + "\n")
    print(f"{facts['cpu']}, {facts['nproc']} cores; {describe(facts['probe'])}\n")
    path = write_results(config, facts, rows, raw, time.monotonic() - started)
    print(f"bench: {time.monotonic() - started:.0f} s in all; results in {path.relative_to(ROOT)}")
    return 0


def table_rows(raw: dict, context, queries: dict) -> list[Row]:
    """The table, in reading order, from what each step measured; a step that failed says so."""
    from .delivery import delivery_rows
    from .queries import queries_rows
    from .rows import (
        admin_rows,
        ceiling_rows,
        fanout_rows,
        headroom_rows,
        throughput_rows,
        tracker_rows,
    )

    rows: list[Row] = []

    def ok(name: str) -> bool:
        return isinstance(raw.get(name), dict) and "error" not in raw[name]

    if ok("throughput"):
        rows += throughput_rows(raw["throughput"])
    if queries:
        rows += queries_rows(queries, context)
    if ok("fanout"):
        rows += fanout_rows(raw["fanout"])
    if ok("throughput"):
        rows += tracker_rows(raw["throughput"], context, queries)
    if ok("delivery"):
        rows += delivery_rows(raw["delivery"])
    if ok("admin"):
        rows += admin_rows(raw["admin"], context, queries)
    if ok("headroom"):
        rows += headroom_rows(raw["headroom"])
    if ok("throughput"):
        rows += ceiling_rows(raw["throughput"])
    for name, value in raw.items():
        if isinstance(value, dict) and "error" in value:
            rows.append(Row(name, "failed to measure", value["error"][:120]))
    return rows


def write_results(config: Config, facts: dict, rows: list[Row], raw: dict, seconds: float) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"bench-{config.scale}{'-quick' if config.quick else ''}-{stamp}.json"
    document = {
        "when": stamp,
        "config": {
            "scale": config.scale,
            "quick": config.quick,
            "runs": config.runs,
            "seconds": config.seconds,
            "web_concurrency": config.web_concurrency,
            "gunicorn_threads": config.gunicorn_threads,
            "webhook_threads": config.webhook_threads,
            "notification_threads": config.notification_threads,
            "connections": config.connections,
        },
        "machine": facts,
        "seconds": seconds,
        "table": markdown_table(rows),
        "rows": [
            {
                "row": r.name,
                "measures": r.measures,
                "value": r.value,
                "baseline": r.baseline,
                "ratio": r.ratio,
                "goal": r.goal,
                "ok": r.ok,
                "data": r.data,
            }
            for r in rows
        ],
        "raw": raw,
    }
    path.write_text(json.dumps(document, indent=1, default=str))
    return path


if __name__ == "__main__":
    sys.exit(main())
