"""What one benchmark run uses: scale, repeats, ports, databases; all from the environment."""

import os
from dataclasses import dataclass, field
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

SCALES = {"tiny": (200, 1_000), "100k": (10_000, 100_000), "1m": (10_000, 1_000_000)}


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Config:
    """One run's knobs. Quick mode keeps every row and lowers the precision (fewer, shorter runs)."""

    quick: bool = field(default_factory=lambda: os.environ.get("BENCH_QUICK", "") in {"1", "true", "yes"})
    scale: str = field(default_factory=lambda: os.environ.get("BENCH_SCALE", "100k").lower())
    pg_url: str = field(default_factory=lambda: os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    database: str = field(default_factory=lambda: os.environ.get("BENCH_DATABASE", "taskhub_bench"))
    redis_url: str = field(default_factory=lambda: os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5"))
    web_port: int = field(default_factory=lambda: _int("BENCH_WEB_PORT", 18080))
    sink_port: int = field(default_factory=lambda: _int("BENCH_SINK_PORT", 18090))
    mail_port: int = field(default_factory=lambda: _int("BENCH_MAIL_PORT", 18025))
    # The docker-compose defaults: 2 gunicorn workers of 4 threads; a worker per queue, the webhooks one of 32
    # threads (WEBHOOK_WORKER_THREADS), the notifications one of 16 (NOTIFICATION_WORKER_THREADS).
    web_concurrency: int = field(default_factory=lambda: _int("WEB_CONCURRENCY", 2))
    gunicorn_threads: int = field(default_factory=lambda: _int("GUNICORN_THREADS", 4))
    webhook_threads: int = field(default_factory=lambda: _int("WEBHOOK_WORKER_THREADS", 32))
    notification_threads: int = field(default_factory=lambda: _int("NOTIFICATION_WORKER_THREADS", 16))
    runs_override: int = field(default_factory=lambda: _int("BENCH_RUNS", 0))
    only: tuple[str, ...] = field(
        default_factory=lambda: tuple(r for r in os.environ.get("BENCH_ONLY", "").split(",") if r)
    )

    @property
    def runs(self) -> int:
        return self.runs_override or (1 if self.quick else 3)

    @property
    def seconds(self) -> float:
        """Length of one throughput measurement."""
        return 3.0 if self.quick else 8.0

    @property
    def persons(self) -> int:
        return SCALES[self.scale][0]

    @property
    def tasks(self) -> int:
        return SCALES[self.scale][1]

    @property
    def database_url(self) -> str:
        return f"{self.pg_url}/{self.database}"

    @property
    def template_database(self) -> str:
        return f"{self.database}_tpl_{self.scale}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def sink_url(self) -> str:
        return f"http://127.0.0.1:{self.sink_port}"

    @property
    def connections(self) -> int:
        """Closed-loop connections: every gunicorn thread busy, plus a little queue."""
        return self.web_concurrency * self.gunicorn_threads

    def wants(self, row: str) -> bool:
        return not self.only or row in self.only


def server_env(config: Config) -> dict[str, str]:
    """The environment gunicorn, Celery and the harness's own Django share."""
    return {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-secret-key-" + "b" * 40,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PUBLIC_BASE_URL": config.base_url,
        "SECURE_SSL_REDIRECT": "0",
        "DATABASE_URL": config.database_url,
        "REDIS_URL": config.redis_url,
        "API_RATE_LIMIT": "100000000/minute",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        "SMS_BACKEND": "console",
        # Emails go over SMTP, as in production, to the mail sink (bench.servers.start_mail_sink).
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(config.mail_port),
        "TASKHUB_VAR_DIR": str(ROOT / "var" / "bench"),
        "STATIC_ROOT": str(ROOT / "var" / "bench" / "static"),
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "INFO"),
        "WEB_CONCURRENCY": str(config.web_concurrency),
        "GUNICORN_THREADS": str(config.gunicorn_threads),
    }
