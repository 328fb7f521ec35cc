from django.core.management.base import BaseCommand
from django.utils import timezone

from taskhub import operations


def age(oldest_due, now) -> str:
    if oldest_due is None:
        return "-"
    seconds = int(max(0, (now - oldest_due).total_seconds()))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds}s"


class Command(BaseCommand):
    help = "Show the webhook and notification backlog per organization and endpoint (or channel)."

    def handle(self, *args, **options):
        now = timezone.now()
        self.stdout.write("Webhook deliveries")
        rows = operations.webhook_outbox(now)
        self.table(
            ["organization", "endpoint", "pending", "failed", "dead", "oldest due", "url"],
            [
                [
                    row["endpoint__organization__slug"],
                    f"{row['endpoint_id']}{'' if row['endpoint__enabled'] else ' (disabled)'}",
                    row["pending"],
                    row["failed"],
                    row["dead"],
                    age(row["oldest_due"], now),
                    row["endpoint__url"],
                ]
                for row in rows
            ],
        )
        notifications = operations.notification_outbox(now)
        if notifications is None:
            return
        self.stdout.write("\nNotifications")
        self.table(
            ["organization", "channel", "queued", "held", "failed", "oldest due"],
            [
                [
                    row["organization__slug"],
                    row["channel"],
                    *(row[k] for k in ("queued", "held", "failed")),
                    age(row["oldest_due"], now),
                ]
                for row in notifications
            ],
        )

    def table(self, header: list[str], rows: list[list]) -> None:
        if not rows:
            self.stdout.write("  nothing waiting")
            return
        cells = [header, *[[str(cell) for cell in row] for row in rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        for row in cells:
            self.stdout.write("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
