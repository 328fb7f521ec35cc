"""Start and stop what production runs (gunicorn, Celery worker and beat) plus the sink; run the load tools."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from .config import BENCH_DIR, ROOT, Config

LOG_DIR = ROOT / "var" / "bench" / "logs"
VENV_BIN = Path(sys.executable).parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 15) -> None:
        """TERM this process (a warm shutdown for gunicorn and Celery), then KILL it if it lingers."""
        if self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def spawn(name: str, argv: list[str], env: dict[str, str]) -> Process:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / f"{name}.log").open("ab")
    popen = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    return Process(name, popen)


def start_gunicorn(config: Config, env: dict[str, str]) -> Process:
    """The Dockerfile's command with the bench settings module, bound to loopback."""
    argv = [
        str(VENV_BIN / "gunicorn"),
        "taskhub.wsgi",
        "--bind",
        f"127.0.0.1:{config.web_port}",
        "--workers",
        str(config.web_concurrency),
        "--threads",
        str(config.gunicorn_threads),
        "--access-logfile",
        "-",
        "--error-logfile",
        "-",
    ]
    process = spawn("gunicorn", argv, env)
    wait_http(f"{config.base_url}/bench/trivial", process)
    return process


def start_workers(config: Config, env: dict[str, str]) -> list[Process]:
    """docker-compose's workers: one per queue, webhooks and notifications on thread pools."""
    queues = (
        ("webhooks", ["--pool", "threads", "--concurrency", str(config.webhook_threads)]),
        ("notifications", ["--pool", "threads", "--concurrency", str(config.notification_threads)]),
        ("default", []),
    )
    common = ["--loglevel", "INFO", "--without-mingle", "--without-gossip"]
    celery = [str(VENV_BIN / "celery"), "-A", "taskhub", "worker"]
    return [
        spawn(f"celery-worker-{queue}", [*celery, "-Q", queue, *pool, *common, "-n", f"{queue}@%h"], env)
        for queue, pool in queues
    ]


def start_beat(env: dict[str, str]) -> Process:
    schedule = ROOT / "var" / "bench" / "celerybeat-schedule"
    argv = [str(VENV_BIN / "celery"), "-A", "taskhub", "beat", "--loglevel", "INFO", "--schedule", str(schedule)]
    return spawn("celery-beat", argv, env)


def start_sink(config: Config) -> Process:
    process = spawn("sink", [sys.executable, "-m", "bench.sink", "--port", str(config.sink_port)], {})
    wait_http(f"{config.sink_url}/_stats", process)
    return process


def start_mail_sink(config: Config) -> Process:
    """An SMTP server that accepts every message and keeps none (aiosmtpd's Sink), for the emails."""
    listen = f"127.0.0.1:{config.mail_port}"
    argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", listen, "-c", "aiosmtpd.handlers.Sink"]
    process = spawn("mail-sink", argv, {})
    wait_ready(process, listen, lambda: socket.create_connection(("127.0.0.1", config.mail_port), timeout=1).close())
    return process


def wait_http(url: str, process: Process, timeout: float = 60) -> None:
    def answers() -> None:
        if httpx.get(url, timeout=2).status_code >= 500:
            raise OSError(f"{url} answered a server error")

    wait_ready(process, url, answers, timeout)


def wait_ready(process: Process, what: str, check: Callable[[], None], timeout: float = 60) -> None:
    """Until `check()` passes (it raises OSError or httpx.HTTPError until then), or the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited; see {LOG_DIR / process.name}.log")
        try:
            check()
            return
        except (OSError, httpx.HTTPError):
            time.sleep(0.2)
    raise RuntimeError(f"{process.name} did not answer {what} within {timeout:.0f} s")


def wait_workers(app, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=1.0)) >= count:
            return
    raise RuntimeError("The Celery workers did not all answer a ping in time.")


# --- CPU from /proc ---------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes (all their threads), in seconds."""
    return sum(_cpu_ticks(pid) for pid in pids) / CLOCK_TICKS


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def process_groups(processes: dict[str, Process]) -> dict[str, list[int]]:
    """Every process a change costs CPU in, by what it is: ours with their children, and the services.

    PostgreSQL's backends and Redis are found by name, so they count whoever else uses them on the
    machine; during a bench run that is the bench alone.
    """
    groups = {name: [process.pid, *children(process.pid)] for name, process in processes.items()}
    services: dict[str, list[int]] = {"postgresql": [], "redis": []}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            comm = _comm(int(entry.name))
            if comm == "postgres":
                services["postgresql"].append(int(entry.name))
            elif comm.startswith("redis-server"):
                services["redis"].append(int(entry.name))
    return {**groups, **services}


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent on anything but idling and waiting on I/O, in seconds."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class CpuMeter:
    """CPU seconds spent by each group of processes between `__init__` and `spent()`.

    The groups are found again at the end, so a process started meanwhile (a database backend for a
    new connection) counts from zero; one that ended meanwhile loses what it spent.
    """

    def __init__(self, processes: dict[str, Process]) -> None:
        self.processes = processes
        self.before = {pid: _cpu_ticks(pid) for pids in process_groups(processes).values() for pid in pids}
        self.machine_before = machine_busy_seconds()

    def spent(self) -> dict[str, float]:
        groups = process_groups(self.processes)
        spent = {
            name: sum(_cpu_ticks(pid) - self.before.get(pid, 0) for pid in pids) / CLOCK_TICKS
            for name, pids in groups.items()
        }
        spent["machine"] = machine_busy_seconds() - self.machine_before
        return spent


# --- load tools -------------------------------------------------------------------------------


def wrk(url: str, script: str, args: list[str], *, seconds: float, connections: int, threads: int = 2) -> dict:
    """Closed-loop load with Debian's wrk; returns requests/s, errors and latency percentiles."""
    argv = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(max(connections, threads)),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH_DIR / "lua" / script),
        url,
        "--",
        *args,
    ]
    env = {**os.environ, "BENCH_LUA_DIR": str(BENCH_DIR / "lua")}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    seconds_run = data["duration_us"] / 1e6
    good = data["requests"] - data["non2xx"]
    return {**data, "rps": good / seconds_run, "p50_ms": data["p50_us"] / 1000, "p99_ms": data["p99_us"] / 1000}


def loadgen(port: int, *, rate: float, duration: float, scenario: str, **options) -> dict:
    """Open-loop load from its own process (bench.loadgen)."""
    argv = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--port",
        str(port),
        "--rate",
        f"{rate:g}",
        "--duration",
        f"{duration:g}",
        "--scenario",
        scenario,
    ]
    for key, value in options.items():
        argv += [f"--{key}", str(value)]
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=duration + 60, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stderr[-1000:]}")
    return json.loads(out.stdout)


def backlog(redis_url: str) -> int:
    """Messages waiting in the worker's queues, plus outbox rows still due."""
    import redis
    from django.db import connection
    from django.utils import timezone

    from notifications.models import Notification
    from webhooks.models import Delivery

    client = redis.Redis.from_url(redis_url)
    queued = sum(client.llen(name) for name in ("default", "webhooks", "notifications"))
    now = timezone.now()
    due = Delivery.objects.due(now).count() + Notification.objects.due(now).count()
    connection.close()
    return queued + due


def wait_idle(redis_url: str, limit: float) -> int:
    """Wait (at most `limit` s) until the worker has nothing left to do; returns what was left."""
    deadline = time.monotonic() + limit
    left = backlog(redis_url)
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = backlog(redis_url)
    return left
