from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from taskhub import operations


class Command(BaseCommand):
    help = (
        "Delete webhook attempts and finished messages older than --days (default RETENTION_DAYS), "
        "and expired idempotency records. Anything still pending or retrying is kept."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=None, help="Retention window in days")

    def handle(self, *args, days: int | None, **options):
        days = settings.RETENTION_DAYS if days is None else days
        if days < 1:
            raise CommandError("--days must be at least 1.")
        deleted = operations.prune(days=days)
        if not deleted:
            self.stdout.write(f"Nothing older than {days} days to prune.")
        for model, count in sorted(deleted.items()):
            self.stdout.write(f"{model}: {count} deleted")
