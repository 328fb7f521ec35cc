"""The bench's own database: seeded once into a template per scale, copied fresh for every run."""

import hashlib
import subprocess
import sys
import time

import psycopg
from psycopg import sql

from .config import ROOT, Config

APPS = ("taskhub", "tasks", "notifications", "webhooks")


def fingerprint(config: Config) -> str:
    """Changes when the schema or the seed does: then the template is built again."""
    digest = hashlib.sha256(config.scale.encode())
    for app in APPS:
        for path in sorted((ROOT / app / "migrations").glob("*.py")):
            digest.update(path.name.encode() + path.read_bytes())
    digest.update((ROOT / "bench" / "seed.py").read_bytes())
    return digest.hexdigest()[:16]


def admin(config: Config) -> psycopg.Connection:
    return psycopg.connect(f"{config.pg_url}/postgres", autocommit=True)


def template_fingerprint(conn: psycopg.Connection, name: str) -> str | None:
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [name]
    ).fetchone()
    return row[0] if row else None


def drop(conn: psycopg.Connection, name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def create(conn: psycopg.Connection, name: str, template: str | None = None) -> None:
    query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
    conn.execute(query)


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=600
    )


def collectstatic(env: dict[str, str]) -> None:
    """DEBUG off serves hashed static names: the admin pages need the manifest."""
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=600,
    )


def prepare(config: Config, env: dict[str, str], seed_into) -> dict:
    """A fresh `config.database` with the seeded data; `seed_into()` seeds it when the template is stale."""
    started = time.monotonic()
    wanted = fingerprint(config)
    with admin(config) as conn:
        drop(conn, config.database)
        if template_fingerprint(conn, config.template_database) == wanted:
            create(conn, config.database, template=config.template_database)
            return {"seeded": False, "seconds": time.monotonic() - started}
        drop(conn, config.template_database)
        create(conn, config.database)
    migrate(env)
    seed_into()
    seeded_at = time.monotonic()
    with admin(config) as conn:
        create(conn, config.template_database, template=config.database)
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(config.template_database), sql.Literal(wanted)
            )
        )
    return {"seeded": True, "seconds": time.monotonic() - started, "seed_seconds": seeded_at - started}
