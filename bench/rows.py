"""The rows measured over HTTP: throughput next to baselines, fan-out, latency, headroom, admin."""

import functools
import json
import time

import httpx

from . import servers
from .context import ADMIN_PASSWORD, ADMIN_USER, FRESH_BLOCK, Context, set_fanout
from .stats import Row, fmt, fmt_ratio, median, paired_ratio, percentile, ratio

CREATE_BODY = {
    "title": "Bench create",
    "description": "Replace the filter and check the pressure.",
    "due_datetime": "2026-03-02 09:00:00",
    "importance": "high",
}
BARE_BODY = {
    "title": "Bench create",
    "details": "Replace the filter and check the pressure.",
    "due_datetime": "2026-03-02T09:00:00Z",
    "importance": "high",
}
NOT_YET = "not yet available"


def scenarios(context: Context) -> dict[str, tuple[str, str, list[str]]]:
    """name -> (base URL, wrk script, script args)."""
    config, token = context.config, context.token
    web, sink, tokens = config.base_url, config.sink_url, str(context.tokens_file)
    found = {
        "trivial": (web, "get.lua", ["/bench/trivial"]),
        "sink": (sink, "post.lua", ["", "/d0", json.dumps({"type": "ceiling"})]),
        "bare_create": (
            web,
            "post.lua",
            [token, "/bench/bare-create", json.dumps({**BARE_BODY, "group": context.group_id})],
        ),
        "create": (web, "post.lua", [token, "/api/task/", json.dumps({**CREATE_BODY, "group_id": context.group_id})]),
        "upsert": (web, "upsert.lua", [token, "", str(config.tasks), context.crew_arg]),
        "bare_get": (web, "tokens.lua", [tokens, "/bench/bare-get/", ""]),
    }
    if context.has_tracker:
        fresh = str(context.fresh_tokens_file)
        # Repeat views: the 2,000 links, each viewed once just before the run (TRACKER_WARM).
        found["tracker_page"] = (web, "tokens.lua", [tokens, "/t/", ""])
        found["tracker_json"] = (web, "tokens.lua", [tokens, "/t/", "/status.json"])
        # First views: every request a link not viewed before (the run's own block of fresh links).
        found["tracker_page_first"] = (web, "fresh.lua", [fresh, "/t/", "", "0", str(FRESH_BLOCK)])
        found["tracker_json_first"] = (web, "fresh.lua", [fresh, "/t/", "/status.json", "0", str(FRESH_BLOCK)])
    return found


TRACKER_WARM = {"tracker_page": "", "tracker_json": "/status.json"}
WRK_THREADS = 2


def view_each_once(context: Context, suffix: str) -> None:
    """Open every repeat-view link once, as its customer would have before opening it again."""
    with httpx.Client(base_url=context.config.base_url, timeout=30) as client:
        for token in context.tracker_tokens:
            client.get(f"/t/{token}{suffix}").raise_for_status()


WARMED = ("bare_create", "create", "upsert")


def warm_up_writes(context: Context) -> None:
    """A short unmeasured run of each write scenario, so the first pass meets the steady state too.

    Every gunicorn thread keeps its own connection, prepared statements and input fields: without
    this, their first requests fell in the first measured pass, which was the low one of every run.
    """
    found = scenarios(context)
    for name in WARMED:
        url, script, args = found[name]
        if name == "upsert":
            args = [args[0], context.prefix(), *args[2:]]
        servers.wrk(url, script, args, seconds=min(2.0, context.config.seconds), connections=context.config.connections)


def measure_throughput(context: Context) -> dict[str, list[dict]]:
    """Every scenario once per repeat, interleaved, so TaskHub and its baseline share the machine's state."""
    config = context.config
    workers = servers.children(context.processes["gunicorn"].pid)
    results: dict[str, list[dict]] = {}
    warm_up_writes(context)
    for run in range(config.runs):
        for name, (url, script, args) in scenarios(context).items():
            if name == "upsert":
                args = [args[0], context.prefix(), *args[2:]]
            if script == "fresh.lua":
                args = [*args[:3], str(run * WRK_THREADS * FRESH_BLOCK), *args[4:]]
            if name in TRACKER_WARM:
                view_each_once(context, TRACKER_WARM[name])
            before = servers.cpu_seconds(workers)
            result = servers.wrk(
                url, script, args, seconds=config.seconds, connections=config.connections, threads=WRK_THREADS
            )
            if script == "fresh.lua" and result["requests"] > WRK_THREADS * FRESH_BLOCK:
                raise RuntimeError(f"{name}: {result['requests']} requests ran past the run's fresh links")
            cpu = servers.cpu_seconds(workers) - before
            result["cpu_ms_per_request"] = cpu * 1000 / result["requests"] if result["requests"] else None
            results.setdefault(name, []).append(result)
            time.sleep(0.5)
    return results


def _med(results: dict[str, list[dict]], name: str, key: str) -> float | None:
    return median([r[key] for r in results.get(name, []) if r.get(key) is not None])


def throughput_rows(results: dict[str, list[dict]]) -> list[Row]:
    bare_rps, bare_cpu = _med(results, "bare_create", "rps"), _med(results, "bare_create", "cpu_ms_per_request")
    rows = []
    for name, route, goal in (
        ("create", "POST /api/task/", 0.8),
        ("upsert", "PUT /api/express/tasks/upsert/{id}", 0.7),
    ):
        rps, cpu = _med(results, name, "rps"), _med(results, name, "cpu_ms_per_request")
        r = paired_ratio(results.get(name, []), results.get("bare_create", []))
        rows.append(
            Row(
                name,
                f"{route} req/s (CPU ms/req)",
                f"{fmt(rps)} ({fmt(cpu)} ms)",
                f"bare DRF create {fmt(bare_rps)} ({fmt(bare_cpu)} ms)",
                fmt_ratio(r),
                f"≥ {goal}×",
                None if r is None else r >= goal,
                {
                    "rps": rps,
                    "cpu_ms": cpu,
                    "bare_rps": bare_rps,
                    "bare_cpu_ms": bare_cpu,
                    "ratio_of_medians": ratio(rps, bare_rps),
                    "runs": results.get(name),
                },
            )
        )
    non2xx = {name: sum(r["non2xx"] + r["errors"] for r in runs) for name, runs in results.items()}
    rows[0].data["failed_requests"] = non2xx
    return rows


def tracker_rows(results: dict[str, list[dict]], context: Context, queries: dict) -> list[Row]:
    bare = _med(results, "bare_get", "rps")
    if not context.has_tracker:
        return [
            Row(
                "tracker",
                "/t/{token} and status JSON req/s",
                NOT_YET,
                f"bare indexed get {fmt(bare)}/s",
                "",
                "≥ 0.7×, ≤ 3 queries",
            )
        ]
    rows = []
    views = (
        ("tracker_page", "/t/{token} req/s, repeat views"),
        ("tracker_json", "/t/{token}/status.json req/s, repeat views"),
        ("tracker_page_first", "/t/{token} req/s, first view of each link"),
        ("tracker_json_first", "/t/{token}/status.json req/s, first view of each link"),
    )
    for name, label in views:
        rps = _med(results, name, "rps")
        count = queries.get(name)
        r = paired_ratio(results.get(name, []), results.get("bare_get", []))
        ok = None if r is None else r >= 0.7 and count is not None and count <= 3
        rows.append(
            Row(
                "tracker",
                label,
                f"{fmt(rps)} ({count} queries)",
                f"bare indexed get {fmt(bare)}/s (1 query)",
                fmt_ratio(r),
                "≥ 0.7×, ≤ 3 queries",
                ok,
                {"rps": rps, "bare_rps": bare, "queries": count, "ratio_of_medians": ratio(rps, bare)},
            )
        )
    return rows


def ceiling_rows(results: dict[str, list[dict]]) -> list[Row]:
    sink, trivial = _med(results, "sink", "rps"), _med(results, "trivial", "rps")
    return [
        Row(
            "ceiling",
            "wrk → sink POST /d0 req/s (load generator and sink together)",
            fmt(sink),
            "",
            "",
            "≫ rows above",
            None,
            {"rps": sink},
        ),
        Row(
            "ceiling",
            "wrk → gunicorn + Django, trivial view req/s (the stack with no work)",
            fmt(trivial),
            "",
            "",
            "",
            None,
            {"rps": trivial},
        ),
    ]


# --- fan-out and latency ------------------------------------------------------------------------


def fanout_rate(context: Context, headroom: dict | None) -> float:
    """Half the highest rate the fan-out side sustained in this run (the headroom row); 10/s without one.

    Both sides then run below saturation, so p50 is service time and the ratio is what fan-out
    adds to a request. Half the closed-loop rate without fan-out, as this once was, put the
    fan-out side past its own capacity: its p50 was queueing, which the headroom row measures.
    """
    best, steps = (headroom or {}).get("best"), (headroom or {}).get("steps")
    if best:
        return max(2.0, best / 2)
    return max(2.0, steps[0]["rate"] / 2) if steps else 10.0  # not even the first step held: half of it


def _upsert_load(context: Context, rate: float, duration: float, seed: int) -> dict:
    return servers.loadgen(
        context.config.web_port,
        rate=rate,
        duration=duration,
        scenario="upsert",
        token=context.token,
        tasks=context.config.tasks,
        crew=context.crew_arg,
        prefix=context.prefix(),
        seed=seed,
        connections=64,
    )


def warm_up(context: Context) -> None:
    """A few upserts first: each gunicorn thread's first requests pay one-time costs (imports, connections)."""
    _upsert_load(context, 10, 2.0, seed=1)


@functools.cache
def sink_client(url: str) -> httpx.Client:
    """One client for every call the harness makes to the sink.

    `httpx.get` builds a client, TLS context included, for each call: about 20 ms of CPU. The
    delivery row polls the sink every 20 ms, so the harness took half a core from the worker it
    was measuring; a kept client costs 0.3 ms a call.
    """
    return httpx.Client(base_url=url, timeout=10)


def sink_stats(context: Context) -> dict:
    return sink_client(context.config.sink_url).get("/_stats").json()


def sink_reset(context: Context) -> None:
    sink_client(context.config.sink_url).post("/_reset")


def wait_sink_quiet(context: Context, limit: float) -> dict:
    """Poll until the sink stops receiving for a second, at most `limit` seconds."""
    deadline, last, stats = time.monotonic() + limit, -1, sink_stats(context)
    while time.monotonic() < deadline and stats["count"] != last:
        last = stats["count"]
        time.sleep(1.0)
        stats = sink_stats(context)
    return stats


def measure_fanout(context: Context, headroom: dict | None = None) -> dict:
    """Upserts at a steady rate with fan-out off, then on; the sink times each first delivery."""
    config, rate = context.config, fanout_rate(context, headroom)
    duration = 4.0 if config.quick else 8.0
    off, on, latencies, backlog = [], [], [], []
    set_fanout(context, on=False)
    warm_up(context)
    for n in range(config.runs):
        set_fanout(context, on=False)
        off.append(_upsert_load(context, rate, duration, seed=100 + n))
        set_fanout(context, on=True)
        sink_reset(context)
        on.append(_upsert_load(context, rate, duration, seed=200 + n))
        stats = wait_sink_quiet(context, 6 if config.quick else 30)
        latencies += stats["latency_ms"]
        backlog.append(stats["unique"])
        set_fanout(context, on=False)
    return {"rate": rate, "off": off, "on": on, "latency_ms": latencies, "delivered": backlog}


def fanout_rows(data: dict) -> list[Row]:
    p50_off = median([percentile(r["latency_ms"], 50) for r in data["off"]])
    p50_on = median([percentile(r["latency_ms"], 50) for r in data["on"]])
    r = ratio(p50_on, p50_off)
    lat = data["latency_ms"]
    p50, p95 = percentile(lat, 50), percentile(lat, 95)
    return [
        Row(
            "fan-out",
            f"upsert p50 at {data['rate']:g}/s, 3 endpoints + notifications",
            fmt(p50_on, " ms"),
            f"no endpoints, no notifications {fmt(p50_off, ' ms')}",
            fmt_ratio(r),
            "≤ 1.2×",
            None if r is None else r <= 1.2,
            {
                "p50_on": p50_on,
                "p50_off": p50_off,
                "p99_on": median([percentile(x["latency_ms"], 99) for x in data["on"]]),
                "p99_off": median([percentile(x["latency_ms"], 99) for x in data["off"]]),
            },
        ),
        Row(
            "latency",
            f"commit → first delivery attempt, p50 / p95 ({len(lat)} events)",
            f"{fmt(p50, ' ms')} / {fmt(p95, ' ms')}",
            "",
            "",
            "p95 ≤ 500 ms",
            None if p95 is None else p95 <= 500,
            {"p50": p50, "p95": p95, "events": len(lat), "delivered": data["delivered"]},
        ),
    ]


# --- headroom -----------------------------------------------------------------------------------


HEADROOM_STEPS = (5, 10, 15, 20, 25, 30, 35, 40, 50, 60, 75, 90, 100, 125, 150, 200)  # offered upserts a second
HEADROOM_QUICK_STEPS = (5, 10, 25, 50, 100)
HEADROOM_P99_MS = 250
DELIVERY_P95_MS = 500  # the latency row's goal: a rate whose deliveries fall behind is not sustained


def measure_headroom(context: Context) -> dict:
    """Step the offered upsert rate (fan-out on) until p99 passes 250 ms, requests fail, or the deliveries
    the step's changes sent fall behind (commit → first delivery p95 past 500 ms)."""
    config = context.config
    steps = HEADROOM_QUICK_STEPS if config.quick else HEADROOM_STEPS
    duration = 4.0 if config.quick else 8.0
    set_fanout(context, on=True)
    warm_up(context)
    wait_sink_quiet(context, 3 if config.quick else 20)
    results, best = [], None
    try:
        for n, rate in enumerate(steps):
            sink_reset(context)
            meter = servers.CpuMeter(context.processes)
            result = _upsert_load(context, rate, duration, seed=300 + n)
            # Let the worker catch up: what it sends late counts against this step, and the next starts clean.
            delivered = wait_sink_quiet(context, 6 if config.quick else 30)["latency_ms"]
            changes = max(1, result["completed"])
            cpu_ms = {name: round(seconds * 1000 / changes, 2) for name, seconds in meter.spent().items()}
            p99, delivery_p95 = percentile(result["latency_ms"], 99), percentile(delivered, 95)
            ok = result["errors"] == 0 and result["completed"] == result["scheduled"]
            ok = ok and set(result["statuses"]) <= {"200", "201"}
            ok = ok and p99 is not None and p99 <= HEADROOM_P99_MS
            ok = ok and delivery_p95 is not None and delivery_p95 <= DELIVERY_P95_MS
            results.append(
                {
                    "rate": rate,
                    "p50": percentile(result["latency_ms"], 50),
                    "p99": p99,
                    "delivery_p95": delivery_p95,
                    "ok": ok,
                    "errors": result["errors"],
                    "statuses": result["statuses"],
                    "cpu_ms_per_change": cpu_ms,
                }
            )
            spent = ", ".join(f"{name} {ms:g}" for name, ms in cpu_ms.items())
            print(f"bench: headroom {rate}/s: p99 {fmt(p99)} ms; CPU ms a change: {spent}", flush=True)
            if not ok:
                break
            best = rate
    finally:
        set_fanout(context, on=False)
    return {"best": best, "steps": results}


def headroom_rows(data: dict) -> list[Row]:
    best = data["best"]
    steps = ", ".join(
        f"{s['rate']}/s p99 {fmt(s['p99'])} ms, deliveries p95 {fmt(s.get('delivery_p95'))} ms" for s in data["steps"]
    )
    return [
        Row(
            "headroom",
            "highest upsert rate with p99 ≤ 250 ms and deliveries keeping up (p95 ≤ 500 ms), fan-out on (open loop)",
            f"< {data['steps'][0]['rate']}/s" if best is None else f"≥ {best}/s",
            "Onfleet's published 20 req/s per org",
            fmt_ratio(ratio(best, 20)),
            "≥ 100/s",
            None if best is None else best >= 100,
            {"steps": data["steps"], "detail": steps},
        )
    ]


# --- admin --------------------------------------------------------------------------------------


def admin_session(context: Context) -> httpx.Client:
    client = httpx.Client(base_url=context.config.base_url, timeout=30, follow_redirects=False)
    page = client.get("/admin/login/")
    csrf = client.cookies.get("csrftoken") or ""
    marker = 'name="csrfmiddlewaretoken" value="'
    if marker in page.text:
        csrf = page.text.split(marker, 1)[1].split('"', 1)[0]
    answer = client.post(
        "/admin/login/",
        data={"username": ADMIN_USER, "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": csrf, "next": "/admin/"},
    )
    if answer.status_code != 302:
        raise RuntimeError(f"admin login failed: {answer.status_code}")
    return client


def measure_admin(context: Context) -> dict:
    count = 10 if context.config.quick else 40
    client = admin_session(context)
    timings, statuses = [], set()
    try:
        client.get("/admin/tasks/task/")  # warm
        for _ in range(count):
            started = time.perf_counter()
            statuses.add(client.get("/admin/tasks/task/").status_code)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        client.close()
    return {
        "p50": percentile(timings, 50),
        "p95": percentile(timings, 95),
        "statuses": sorted(statuses),
        "requests": count,
    }


def admin_rows(data: dict, context: Context, queries: dict) -> list[Row]:
    scale = context.config.scale
    goal = 500 if scale == "1m" else 300
    count = queries.get("admin_changelist")
    ok = data["p95"] is not None and data["p95"] <= goal and data["statuses"] == [200]
    return [
        Row(
            "admin",
            f"task changelist p95 at {context.config.tasks:,} tasks (queries)",
            f"{fmt(data['p95'], ' ms')} ({count} queries)",
            "",
            "",
            f"≤ {goal} ms, constant queries",
            ok,
            {**data, "queries": count},
        )
    ]
