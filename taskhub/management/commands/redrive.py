from datetime import datetime, time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from taskhub import operations
from taskhub.models import Organization


def moment(value: str) -> datetime:
    """An ISO 8601 date or date-time; without an offset it is in the project's time zone."""
    parsed = parse_datetime(value)
    if parsed is None and (day := parse_date(value)) is not None:
        parsed = datetime.combine(day, time.min)
    if parsed is None:
        raise ValueError(value)
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = (
        "Send again the failed and dead webhook deliveries (and failed notifications) created in "
        "[--since, --until): they are reset to pending and due now; the workers take them from there."
    )

    def add_arguments(self, parser):
        parser.add_argument("--since", required=True, type=moment, help="ISO 8601 date or date-time (inclusive)")
        parser.add_argument("--until", type=moment, default=None, help="ISO 8601 (exclusive); default: now")
        parser.add_argument("--org", default=None, help="Only this organization (slug)")
        parser.add_argument("--endpoint", type=int, default=None, help="Only this webhook endpoint (id)")
        parser.add_argument("--kind", choices=["webhooks", "notifications", "all"], default="all")

    def handle(self, *args, since, until, org, endpoint, kind, **options):
        until = until or timezone.now()
        if since >= until:
            raise CommandError("--since must be before --until.")
        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"No organization '{org}'.")
        if endpoint is not None and kind == "notifications":
            raise CommandError("--endpoint only applies to webhooks.")
        window = f"created {since.isoformat()} to {until.isoformat()}"
        if kind in ("webhooks", "all"):
            done = operations.webhooks_redrive(
                since=since, until=until, organization=organization, endpoint_id=endpoint
            )
            self.stdout.write(f"Webhook deliveries {window}: {done.requeued} re-queued.")
            if done.skipped:
                self.stdout.write(f"  {done.skipped} left alone: their endpoint is disabled (enable it, then redrive).")
        if kind in ("notifications", "all") and endpoint is None:
            done = operations.notifications_redrive(since=since, until=until, organization=organization)
            self.stdout.write(f"Notifications {window}: {done.requeued} re-queued.")
