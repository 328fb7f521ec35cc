"""Pytest plugin, loaded before Django: point the suite at real PostgreSQL and Redis.

With REQUIRE_SERVICES=1 (CI) an unreachable service fails the run. Without it, on a machine that
lacks them, the suite falls back to SQLite, skips what needs Redis, and says so loudly.
"""

import os
import socket
import tempfile
from urllib.parse import urlparse

import pytest

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/taskhub"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
REQUIRED = os.environ.get("REQUIRE_SERVICES", "") in {"1", "true", "yes"}


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


os.environ.setdefault("SECRET_KEY", "test-secret-key-" + "k" * 40)
os.environ.setdefault("SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("PUBLIC_BASE_URL", "https://taskhub.test")
VAR_DIR = os.environ.setdefault("TASKHUB_VAR_DIR", tempfile.mkdtemp(prefix="taskhub-test-"))
os.makedirs(os.path.join(VAR_DIR, "static"), exist_ok=True)

DATABASE_URL = os.environ.setdefault("DATABASE_URL", DEFAULT_DATABASE_URL)
REDIS_URL = os.environ.setdefault("REDIS_URL", DEFAULT_REDIS_URL)
MISSING: list[str] = []

if DATABASE_URL.startswith("postgres") and not _reachable(DATABASE_URL, 5432):
    MISSING.append(f"PostgreSQL ({urlparse(DATABASE_URL).netloc})")
    if not REQUIRED:
        os.environ["DATABASE_URL"] = f"sqlite:///{os.environ['TASKHUB_VAR_DIR']}/test.sqlite3"
if not _reachable(REDIS_URL, 6379):
    MISSING.append(f"Redis ({urlparse(REDIS_URL).netloc})")
    if not REQUIRED:
        os.environ["REDIS_URL"] = ""

HAVE_POSTGRES = os.environ["DATABASE_URL"].startswith("postgres")
HAVE_REDIS = bool(os.environ["REDIS_URL"])


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_redis: needs a real Redis server")
    config.addinivalue_line("markers", "requires_postgres: needs a real PostgreSQL server")
    if MISSING and REQUIRED:
        raise pytest.UsageError(
            "REQUIRE_SERVICES=1 but these are unreachable: " + ", ".join(MISSING) + ". Start them and retry."
        )


def pytest_report_header(config):
    db = "PostgreSQL" if HAVE_POSTGRES else "SQLite (fallback)"
    return f"taskhub services: database={db}, redis={'yes' if HAVE_REDIS else 'NO'}"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "requires_redis" in item.keywords and not HAVE_REDIS:
            item.add_marker(pytest.mark.skip(reason="Redis unreachable (set REQUIRE_SERVICES=1 to fail instead)"))
        if "requires_postgres" in item.keywords and not HAVE_POSTGRES:
            item.add_marker(pytest.mark.skip(reason="PostgreSQL unreachable (set REQUIRE_SERVICES=1 to fail instead)"))


def pytest_terminal_summary(terminalreporter):
    if MISSING:
        terminalreporter.section("SERVICES MISSING", sep="!", red=True, bold=True)
        terminalreporter.write_line(
            "Not tested against: " + ", ".join(MISSING) + ". Tests that need them were SKIPPED; "
            "the database tests ran on SQLite. CI runs with REQUIRE_SERVICES=1 and fails instead.",
            red=True,
        )
