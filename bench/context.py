"""Everything a row needs: the running processes, an API token, ids, and switches for fan-out."""

import io
import secrets
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections

from .config import ROOT, Config
from .servers import Process

ORG = "bench"
HOOKS_ORG = "bench-hooks"
ADMIN_USER, ADMIN_PASSWORD = "bench-admin", "bench-admin-password-1"
FANOUT_ENDPOINTS = 3


# First-view rows: 2 wrk threads x FRESH_BLOCK links each run (a first view ran 1,050/s, 8,400 in a
# run, past the 8,000 links a run had before); three runs without reuse, of the 100k scale's
# 49,800 or so not-started tasks after the 2,000 repeat-view links.
FRESH_TOKENS = 45_000
FRESH_BLOCK = 6_000


@dataclass
class Context:
    config: Config
    env: dict[str, str]
    token: str = ""
    organization_id: int = 0
    group_id: int = 0
    crew: list[int] = field(default_factory=list)
    tokens_file: Path = ROOT / "var" / "bench" / "tracker-tokens.txt"
    tracker_tokens: list[str] = field(default_factory=list)
    fresh_tokens_file: Path = ROOT / "var" / "bench" / "tracker-fresh-tokens.txt"
    processes: dict[str, Process] = field(default_factory=dict)
    has_tracker: bool = False

    @property
    def crew_arg(self) -> str:
        return ",".join(str(c) for c in self.crew)

    def prefix(self) -> str:
        """A fresh prefix for new external ids, so runs never collide."""
        return secrets.token_hex(4)


def build(config: Config, env: dict[str, str]) -> Context:
    """API token, admin user, tracker tokens and the endpoints the fan-out rows switch on."""
    from django.urls import NoReverseMatch, reverse

    from taskhub.models import Membership, Organization
    from tasks.models import Group, Person, StatusType, Task

    context = Context(config, env)
    org = Organization.objects.get(slug=ORG)
    out = io.StringIO()
    call_command("create_api_token", ORG, "--ttl", "86400", stdout=out)
    context.token = out.getvalue().strip()
    context.organization_id = org.pk
    context.group_id = Group.objects.filter(organization=org).order_by("pk").values_list("pk", flat=True)[0]
    context.crew = list(
        Person.objects.filter(organization=org, is_crew=True).order_by("pk").values_list("pk", flat=True)[:50]
    )
    tokens = Task.objects.filter(organization=org, status=StatusType.NOTSTARTED, deleted_at__isnull=True)
    context.tracker_tokens = list(tokens.order_by("pk").values_list("url_safe_id", flat=True)[:2000])
    context.tokens_file.parent.mkdir(parents=True, exist_ok=True)
    context.tokens_file.write_text("\n".join(context.tracker_tokens) + "\n")
    # Links no row has viewed before, for the first-view rows: enough for every run to see new ones.
    fresh = tokens.order_by("pk").values_list("url_safe_id", flat=True)[2000 : 2000 + FRESH_TOKENS]
    context.fresh_tokens_file.write_text("\n".join(fresh) + "\n")
    user = get_user_model().objects.create_superuser(ADMIN_USER, "admin@bench.test", ADMIN_PASSWORD)
    Membership.objects.create(organization=org, user=user, role=Membership.Role.ADMIN)
    try:
        reverse("tracker", args=["x"])
        reverse("tracker-status", args=["x"])
        context.has_tracker = True
    except NoReverseMatch:
        context.has_tracker = False
    _endpoints(context, org)
    set_fanout(context, on=False)
    connections.close_all()
    return context


CAP = 10**7  # messages a day: out of a bench day's reach


def _endpoints(context: Context, org) -> None:
    from notifications.models import NotificationSettings
    from notifications.services import default_set_for
    from taskhub.models import Organization
    from webhooks.services import endpoint_create

    for n in range(FANOUT_ENDPOINTS):
        endpoint_create(organization=org, url=f"{context.config.sink_url}/d0", description=f"bench fan-out {n}")
    default_set_for(org)
    # Every run sends what its changes plan, whatever the hour and however many runs today: no quiet
    # hours (they held the SMS of a night run), and the daily caps out of reach (a day's runs reached
    # the SMS cap, and each refusal became a notification.failed event). The caps are still counted.
    NotificationSettings.objects.update_or_create(
        organization=org,
        defaults={
            "quiet_hours_start": time(0),
            "quiet_hours_end": time(0),
            "daily_sms_cap": CAP,
            "daily_email_cap": CAP,
        },
    )
    hooks = Organization.objects.create(slug=HOOKS_ORG, name="Bench deliveries", timezone="UTC")
    endpoint_create(organization=hooks, url=f"{context.config.sink_url}/d0", description="bench delivery")


def set_fanout(context: Context, *, on: bool) -> None:
    """Fan-out on: three webhook endpoints and the default notification rules; off: none of either."""
    from notifications.models import TemplateRule
    from webhooks.models import Endpoint

    Endpoint.objects.filter(organization_id=context.organization_id).update(enabled=on)
    TemplateRule.objects.filter(template_set__organization_id=context.organization_id).update(enabled=on)
    connections.close_all()
