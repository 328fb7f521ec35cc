"""The bench harness's pure pieces, so `make bench` cannot rot between runs (no servers started here)."""

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from bench import bodies, loadgen, stats
from bench.config import Config, server_env
from bench.seed import SEED, _tasks, seed
from tasks.models import Person, Task, TaskAddress, TaskStatus


def test_median_ignores_missing_values():
    assert stats.median([3.0, None, 1.0, 2.0]) == 2.0
    assert stats.median([]) is None


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert stats.percentile(values, 50) == 50
    assert stats.percentile(values, 95) == 95
    assert stats.percentile(values, 100) == 100
    assert stats.percentile([], 99) is None


def test_ratio_and_number_formatting():
    assert stats.ratio(50, 100) == 0.5
    assert stats.ratio(50, 0) is None
    assert stats.fmt_ratio(0.456) == "0.46×"
    assert stats.fmt(None) == "—"
    assert stats.fmt(1234.5) == "1,234"
    assert stats.fmt(12.34, " ms") == "12.3 ms"


def test_table_has_a_line_per_row_and_marks_missed_goals():
    rows = [
        stats.Row("create", "req/s", "90", "bare 100", "0.90×", "≥ 0.8×", True),
        stats.Row("upsert", "req/s", "50", "bare 100", "0.50×", "≥ 0.7×", False),
        stats.Row("tracker", "a | b", "not yet available"),
    ]
    lines = stats.markdown_table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[2].endswith("| met |")
    assert "**missed**" in lines[3]
    assert "a \\| b" in lines[4]


def test_quick_mode_runs_once_and_servers_match_docker_compose(monkeypatch):
    monkeypatch.setenv("BENCH_QUICK", "1")
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    monkeypatch.delenv("GUNICORN_THREADS", raising=False)
    config = Config()
    assert config.runs == 1
    env = server_env(config)
    assert (env["WEB_CONCURRENCY"], env["GUNICORN_THREADS"]) == ("2", "4")
    assert "127.0.0.0/8" in env["WEBHOOK_ALLOWED_NETWORKS"]
    assert env["REDIS_URL"].endswith("/5")
    assert (env["EMAIL_HOST"], env["EMAIL_PORT"]) == ("127.0.0.1", str(config.mail_port))  # the mail sink


def test_upsert_body_is_one_the_api_accepts(org):
    from tasks.serializers import UpsertSerializer

    body = bodies.upsert_body(7, crew=[1, 2, 3], nested=20)
    assert len(body["additional_addresses"]) == 20
    serializer = UpsertSerializer(data=json.loads(json.dumps(body)), context={"organization": org})
    assert serializer.is_valid(), serializer.errors


def test_raw_request_carries_the_json_body():
    request = bodies.http_request("PUT", "/x", "tok", {"a": 1})
    head, body = request.split(b"\r\n\r\n")
    assert b"Authorization: Bearer tok" in head
    assert b"Content-Length: 8" in head
    assert json.loads(body) == {"a": 1}


def test_seed_rows_are_the_same_every_time():
    def rows() -> list[dict]:
        rng = random.Random(SEED)
        return list(_tasks(rng, org_id=1, groups=[1, 2], customers=[5, 6, 7], first_id=10, count=30))

    first, second = rows(), rows()
    assert first == second
    assert all(len(row["url_safe_id"]) == 22 for row in first)
    assert {row["external_id"] for row in first} == {f"ext-{n}" for n in range(30)}


@pytest.mark.requires_postgres
@pytest.mark.django_db
def test_seed_writes_people_and_tasks_with_their_rows():
    seeded = seed(slug="bench-a", persons=60, tasks=40)
    assert Task.objects.filter(organization_id=seeded.organization_id).count() == 40
    assert TaskAddress.objects.filter(task__organization_id=seeded.organization_id).count() == 40
    assert TaskStatus.objects.filter(organization_id=seeded.organization_id).count() == 40
    assert Person.objects.filter(organization_id=seeded.organization_id, is_crew=True).count() == len(seeded.crew_ids)
    assert Task.assignees.through.objects.filter(task__organization_id=seeded.organization_id).count() == 40
    # The sequences moved past the copied ids: the ORM can insert next to them.
    task = Task.objects.create(organization_id=seeded.organization_id, title="after the seed")
    assert task.pk > max(Task.objects.exclude(pk=task.pk).values_list("pk", flat=True))


def test_the_load_generator_never_sends_on_a_keep_alive_connection_the_server_may_have_closed():
    """A server that closes keep-alive connections idle for 1.5 s: a request after a pause is not an error."""

    async def scenario() -> tuple[dict, int]:
        async def serve(reader, writer) -> None:
            try:
                while True:
                    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.5)
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    await writer.drain()
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        args = argparse.Namespace(
            port=port, scenario="get", path="/", token="", connections=4, timeout=2.0, seed=1, rate=1, duration=1
        )
        generator = loadgen.Generator(args)
        request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        await generator.one(time.perf_counter(), request)
        await asyncio.sleep(1.7)  # the server has closed the idle connection by now
        await generator.one(time.perf_counter(), request)
        server.close()
        return generator.statuses, generator.errors

    statuses, errors = asyncio.run(scenario())
    assert errors == 0
    assert statuses == {"200": 2}


def test_fanout_runs_at_half_the_rate_the_fanout_side_sustained():
    from bench.rows import fanout_rate

    assert fanout_rate(None, {"best": 30, "steps": []}) == 15
    assert fanout_rate(None, {"best": 2, "steps": []}) == 2.0  # never below 2/s
    assert fanout_rate(None, {"best": None, "steps": [{"rate": 10}]}) == 5.0  # not even the first step held
    assert fanout_rate(None, None) == 10.0  # headroom not measured in this run


def test_a_ratio_is_the_median_of_each_passs_own_ratio():
    ours = [{"rps": 100.0}, {"rps": 140.0}, {"rps": 105.0}]
    bare = [{"rps": 200.0}, {"rps": 200.0}, {"rps": 150.0}]  # the machine slowed in the last pass
    assert stats.paired_ratio(ours, bare) == 0.7  # 0.5, 0.7, 0.7
    assert stats.ratio(stats.median([r["rps"] for r in ours]), stats.median([r["rps"] for r in bare])) == 0.525
    assert stats.paired_ratio([{"rps": 1.0}], []) is None


def test_the_cpu_meter_counts_a_process_and_its_children_and_the_machine():
    from bench.servers import CpuMeter, Process, children

    spin = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(30)"
    busy = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {spin!r}])\n{spin}"  # and its child
    meter = CpuMeter({})  # started before the process: one found at the end counts from zero
    parent = Process("busy", subprocess.Popen([sys.executable, "-c", busy]))
    try:
        meter.processes = {"busy": parent}
        deadline = time.monotonic() + 20
        while (spent := meter.spent())["busy"] < 0.55 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert spent["busy"] >= 0.55  # 0.3 s each, the parent and its child
        assert spent["machine"] >= spent["busy"] - 0.05
        assert {"postgresql", "redis"} <= set(spent)
    finally:
        for pid in children(parent.pid):
            os.kill(pid, signal.SIGKILL)
        parent.stop(timeout=5)


def test_the_plain_loop_posts_the_body_the_worker_sends_for_the_delivery_rows_events():
    from bench.delivery import PAYLOAD_DATA, plain_body
    from webhooks.delivery import request_body
    from webhooks.models import Event

    timestamp = "2026-01-01T00:00:00Z"
    event = Event(type="task.updated", payload={"type": "task.updated", "timestamp": timestamp, "data": PAYLOAD_DATA})
    assert plain_body(timestamp) == request_body(event)


@pytest.mark.requires_postgres
@pytest.mark.requires_redis
@pytest.mark.django_db(transaction=True)
def test_the_machine_probe_measures_each_cost_and_leaves_no_table_behind():
    from django.db import connection

    from bench.probe import PROBE_TABLE, describe, probe

    db = connection.settings_dict
    url = f"postgresql://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    found = probe(url, os.environ["REDIS_URL"], quick=True)
    assert set(found) == {"python_us", "redis_round_trip_us", "redis_round_trip_cpu_us",
                          "postgresql_round_trip_us", "postgresql_commit_us"}  # fmt: skip
    assert all(value > 0 for value in found.values())
    assert PROBE_TABLE not in connection.introspection.table_names()
    line = describe(found)
    assert f"Redis round trip {found['redis_round_trip_us']:.0f} µs" in line
    assert f"{found['postgresql_commit_us'] / 1000:.2f} ms" in line


def test_a_run_without_a_probe_says_so():
    from bench.probe import describe

    assert describe({}) == "machine probe: not taken"
