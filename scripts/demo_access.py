"""`make run` setup: create or reset the admin login, issue a demo API token, print where to go.

The admin password is generated once and kept in the var folder, so every run prints the same one.
"""

import os
import secrets
import sys
from io import StringIO
from pathlib import Path

import django

ADMIN_USERNAME = "admin"
DEMO_ORG = "demo"


def admin_password(var_dir: Path) -> str:
    path = var_dir / "admin-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def reset_admin(password: str):
    """The superuser `admin`, with `password`, a member of the demo organization."""
    from django.contrib.auth import get_user_model

    from taskhub.models import Membership, Organization

    user, _ = get_user_model().objects.get_or_create(username=ADMIN_USERNAME)
    user.is_staff = user.is_superuser = user.is_active = True
    user.set_password(password)
    user.save()
    org = Organization.objects.get(slug=DEMO_ORG)
    Membership.objects.get_or_create(organization=org, user=user, defaults={"role": Membership.Role.ADMIN})
    return org


def api_token() -> str:
    from django.core.management import call_command

    out = StringIO()
    call_command("create_api_token", DEMO_ORG, stdout=out)
    return out.getvalue().strip()


def tracker_url(org) -> str:
    """The tracker link of the next upcoming demo task (or any demo task)."""
    from django.conf import settings
    from django.utils import timezone

    from tasks.models import Task

    tasks = Task.objects.for_org(org).alive()
    task = tasks.filter(start_datetime__gte=timezone.now()).order_by("start_datetime").first() or tasks.first()
    return f"{settings.PUBLIC_BASE_URL}/t/{task.url_safe_id}" if task else "(no demo task yet)"


def where(path: str) -> str:
    """A path relative to the project when it lives inside it."""
    from django.conf import settings

    try:
        return str(Path(path).relative_to(settings.BASE_DIR))
    except ValueError:
        return path


def backends() -> tuple[str, str]:
    from django.conf import settings
    from django.db import connection

    if connection.vendor == "sqlite":
        database = f"SQLite file {where(settings.DATABASES['default']['NAME'])}"
    else:
        database = f"{connection.vendor} (DATABASE_URL)"
    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        broker = f"embedded, files under {where(str(settings.BROKER_DIR))}"
    else:
        broker = settings.CELERY_BROKER_URL.split("://", 1)[0] + " (REDIS_URL / CELERY_BROKER_URL)"
    return database, broker


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")
    django.setup()
    from django.conf import settings

    password = admin_password(Path(settings.VAR_DIR))
    org = reset_admin(password)
    token = api_token()
    local = f"http://127.0.0.1:{os.environ.get('TASKHUB_PORT', '8000')}"
    database, broker = backends()
    print(
        f"""
  ┌──────────────────────────────────────────────────────────────────────────
  │  TaskHub is starting at {local}/
  │
  │  Dispatcher admin   {local}/admin/
  │     username        {ADMIN_USERNAME}
  │     password        {password}
  │
  │  API docs           {local}/api/docs/
  │  API token ({DEMO_ORG})   {token}
  │     try it          curl -H "Authorization: Bearer {token}" {local}/api/me
  │
  │  Customer tracker   {tracker_url(org)}   (one demo task)
  │
  │  Database           {database}
  │  Celery broker      {broker}
  │
  │  Web, Celery worker and beat start below. Press Ctrl-C to stop all three.
  └──────────────────────────────────────────────────────────────────────────
""",
        flush=True,
    )


if __name__ == "__main__":
    main()
