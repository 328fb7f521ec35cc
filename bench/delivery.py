"""Webhook deliveries per second through the Celery worker, next to a plain loop with the same client."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

from django.db import connections, transaction
from django.utils import timezone

from .context import HOOKS_ORG, Context
from .rows import servers, sink_reset, sink_stats
from .stats import Row, fmt, fmt_ratio, median, ratio

PAYLOAD_DATA = {
    "identifier": "8c4f6a0e-1d2b-4c3e-9f10-2a3b4c5d6e7f",
    "external_id": "ext-1",
    "version": 2,
    "title": "Bench task",
    "status": "NOTSTARTED",
    "details": "x" * 600,
    "extra_fields": {},
}


def _point_endpoint(context: Context, delay_ms: int):
    from webhooks.models import Endpoint

    endpoint = Endpoint.objects.get(organization__slug=HOOKS_ORG)
    endpoint.url = f"{context.config.sink_url}/d{delay_ms}"
    endpoint.save(update_fields=["url"])
    return endpoint


def _write_deliveries(endpoint, count: int) -> None:
    from webhooks.models import Delivery, Event

    now = timezone.now()
    with transaction.atomic():
        events = Event.objects.bulk_create(
            [
                Event(
                    organization_id=endpoint.organization_id,
                    type="task.updated",
                    created_at=now,
                    payload={
                        "type": "task.updated",
                        "timestamp": now.isoformat().replace("+00:00", "Z"),
                        "data": PAYLOAD_DATA,
                    },
                )
                for _ in range(count)
            ]
        )
        Delivery.objects.bulk_create([Delivery(event=e, endpoint=endpoint, next_attempt_at=now) for e in events])


def through_worker(context: Context, delay_ms: int, count: int, limit: float) -> dict:
    """Write `count` due deliveries and enqueue them as the product does on commit; time from the commit
    until the sink has all (polled every 20 ms, so the poll adds at most that)."""
    from webhooks.services import enqueue_endpoints

    endpoint = _point_endpoint(context, delay_ms)
    sink_reset(context)
    _write_deliveries(endpoint, count)
    started = time.monotonic()
    enqueue_endpoints([endpoint.pk])
    deadline, received = started + limit, 0
    while time.monotonic() < deadline:
        received = sink_stats(context)["unique"]
        if received >= count:
            break
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    connections.close_all()
    return {"count": count, "received": received, "seconds": elapsed, "rate": received / elapsed}


def send_concurrency() -> int:
    """Requests the worker may have in flight to one endpoint: its send threads, capped by the endpoint's allowance."""
    from django.conf import settings

    return min(settings.WEBHOOK_SEND_THREADS, settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT)


def plain_body(timestamp: str = "2026-01-01T00:00:00Z") -> str:
    """What the worker sends for one of the row's events (webhooks.delivery.request_body), for the plain loop."""
    payload = {"type": "task.updated", "timestamp": timestamp, "data": PAYLOAD_DATA}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def plain_loop(context: Context, delay_ms: int, count: int) -> dict:
    """The same signed POST through webhooks.http's pooled client, from as many threads as the worker sends with."""
    from webhooks import http
    from webhooks.models import new_secret
    from webhooks.signing import signed_headers

    url = f"{context.config.sink_url}/d{delay_ms}"
    body = plain_body()
    secret = new_secret()
    threads = send_concurrency()
    per_thread = count // threads

    def work(n: int) -> int:
        ok = 0
        for i in range(per_thread):
            headers = signed_headers(msg_id=f"msg_plain_{n}_{i}", timestamp=timezone.now(), body=body, secrets=[secret])
            headers["content-type"] = "application/json"
            ok += http.post(url, content=body.encode(), headers=headers).status_code == 200
        return ok

    sink_reset(context)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        ok = sum(pool.map(work, range(threads)))
    elapsed = time.monotonic() - started
    return {"count": per_thread * threads, "ok": ok, "seconds": elapsed, "rate": ok / elapsed}


def measure_delivery(context: Context) -> dict:
    config = context.config
    plan = {0: 400 if config.quick else 1000, 50: 200 if config.quick else 500}
    results: dict = {"worker": {0: [], 50: []}, "plain": {0: [], 50: []}, "concurrency": send_concurrency()}
    for _ in range(config.runs):
        for delay, count in plan.items():
            results["plain"][delay].append(plain_loop(context, delay, count))
            results["worker"][delay].append(through_worker(context, delay, count, limit=60 if config.quick else 120))
    results["sink_50"] = servers.wrk(
        config.sink_url,
        "post.lua",
        ["", "/d50", '{"type":"ceiling"}'],
        seconds=2 if config.quick else 4,
        connections=64,
    )
    return results


def delivery_rows(data: dict) -> list[Row]:
    rows = []
    concurrency = data["concurrency"]
    for delay in (0, 50):
        worker = median([r["rate"] for r in data["worker"][delay]])
        plain = median([r["rate"] for r in data["plain"][delay]])
        if delay == 0:
            r = ratio(worker, plain)
            rows.append(
                Row(
                    "delivery",
                    "webhook deliveries/s, sink answers in 0 ms",
                    fmt(worker),
                    f"plain loop, {concurrency} threads, same client {fmt(plain)}",
                    fmt_ratio(r),
                    "≥ 0.5×",
                    None if r is None else r >= 0.5,
                    {"worker": worker, "plain": plain},
                )
            )
            continue
        bound = concurrency / (delay / 1000)
        r = ratio(worker, bound)
        rows.append(
            Row(
                "delivery",
                "webhook deliveries/s, sink answers in 50 ms",
                fmt(worker),
                f"concurrency bound {concurrency} ÷ 50 ms = {fmt(bound)}; plain loop {fmt(plain)}",
                fmt_ratio(r),
                "≥ 0.8× of the bound",
                None if r is None else r >= 0.8,
                {"worker": worker, "plain": plain, "bound": bound},
            )
        )
    sink = data["sink_50"]["rps"]
    rows.append(
        Row(
            "ceiling",
            "sink at 50 ms with 64 connections, req/s",
            fmt(sink),
            "",
            "",
            "≫ delivery rows",
            None,
            {"rps": sink},
        )
    )
    return rows
