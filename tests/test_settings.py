"""Settings from the environment, the production checks, and the docker compose shape."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("web", "worker", "beat")
ENV_READ = re.compile(r'(?:os\.environ\.get|env_bool|env_list|env_int)\(\s*"([A-Z][A-Z0-9_]*)"')


def run_manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run manage.py in a clean environment: only PATH and what the test passes."""
    base = {"PATH": os.environ.get("PATH", ""), "TASKHUB_VAR_DIR": str(tmp_path)}
    base["DATABASE_URL"] = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def readme_settings() -> set[str]:
    """Variable names in the README configuration table (rows that start with | `NAME` |)."""
    text = (ROOT / "README.md").read_text()
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]*)` \|", text, flags=re.MULTILINE))


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


# --- production settings ---------------------------------------------------------------------


def test_deploy_check_is_clean_with_production_environment(tmp_path):
    env = {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "taskhub.example.com",
        "SECURE_SSL_REDIRECT": "1",
        "PUBLIC_BASE_URL": "https://taskhub.example.com",
    }

    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_settings_refuse_to_start_without_secret_key_when_debug_is_off(tmp_path):
    result = run_manage("check", env={"DEBUG": "0"}, tmp_path=tmp_path)

    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_debug_runs_without_secret_key_for_make_run(tmp_path):
    result = run_manage("check", env={"DEBUG": "1"}, tmp_path=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_environment_variable_settings_read_is_in_the_readme_table():
    read = set(ENV_READ.findall((ROOT / "taskhub" / "settings.py").read_text()))

    assert read, "no environment variables found in settings.py: has the helper naming changed?"
    assert read - readme_settings() == set(), "document these in the README configuration table"


# --- docker compose --------------------------------------------------------------------------


def test_compose_has_every_production_service():
    services = compose()["services"]

    for name in ("postgres", "redis", "web", "worker", "beat", "mailpit"):
        assert name in services, f"docker-compose.yml has no {name} service"


def test_compose_databases_have_healthchecks_the_app_waits_for():
    services = compose()["services"]

    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "ping" in services["redis"]["healthcheck"]["test"]
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_web_worker_and_beat_share_one_image_and_one_configuration():
    services = compose()["services"]
    images = {services[name]["image"] for name in APP_SERVICES}
    web_only = {"WEB_CONCURRENCY", "GUNICORN_THREADS"}
    shared = {name: set(services[name]["environment"]) - web_only for name in APP_SERVICES}

    assert len(images) == 1
    assert shared["web"] == shared["worker"] == shared["beat"]
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "ALLOWED_HOSTS"} <= shared["web"]


def test_compose_uses_only_variables_the_readme_documents():
    services = compose()["services"]
    documented = readme_settings()

    for name in APP_SERVICES:
        undocumented = set(services[name]["environment"]) - documented
        assert undocumented == set(), f"{name} sets variables the README does not document"


def test_compose_runs_the_real_commands():
    services = compose()["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()

    assert "gunicorn taskhub.wsgi" in dockerfile
    assert "command" not in services["web"], "web runs the image's gunicorn CMD"
    assert services["worker"]["command"][:4] == ["celery", "-A", "taskhub", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "taskhub", "beat"]
    assert services["migrate"]["command"] == ["python", "manage.py", "migrate", "--noinput"]


@pytest.mark.parametrize("process", ["web", "worker", "beat"])
def test_make_run_starts_web_worker_and_beat(process):
    procfile = (ROOT / "Procfile.dev").read_text()

    assert re.search(rf"^{process}: ", procfile, flags=re.MULTILINE)


@pytest.mark.parametrize(("value", "expected"), [(None, "True 5"), ("0", "None None")])
def test_postgresql_connections_prepare_statements_unless_turned_off(tmp_path, value, expected):
    env = {"DEBUG": "1", "DATABASE_URL": "postgres://taskhub@127.0.0.1:5432/taskhub"}
    if value is not None:
        env["DATABASE_PREPARED_STATEMENTS"] = value
    code = (
        "from django.conf import settings; o = settings.DATABASES['default'].get('OPTIONS', {}); "
        "print(o.get('server_side_binding'), o.get('prepare_threshold'))"
    )

    result = run_manage("shell", "-c", code, env=env, tmp_path=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split("\n")[-2] == expected
