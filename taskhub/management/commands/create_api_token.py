from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from taskhub.models import AccessToken, Organization


class Command(BaseCommand):
    help = "Create an API bearer token for an organization (created if missing); prints only the token."

    def add_arguments(self, parser):
        parser.add_argument("org_slug", help="Organization slug, e.g. acme")
        parser.add_argument("--ttl", type=int, default=None, help="Lifetime in seconds (default: no expiry)")
        parser.add_argument("--name", default="", help="Organization name when it is created")

    def handle(self, *args, org_slug: str, ttl: int | None, name: str, **options):
        if slugify(org_slug) != org_slug or len(org_slug) > 64:
            raise CommandError(f"'{org_slug}' is not a valid slug: use lowercase letters, digits and hyphens.")
        if ttl is not None and ttl <= 0:
            raise CommandError("--ttl must be a positive number of seconds.")
        with transaction.atomic():
            org, _ = Organization.objects.get_or_create(slug=org_slug, defaults={"name": name or org_slug})
            _, raw = AccessToken.issue(org, ttl=ttl, name="create_api_token")
        self.stdout.write(raw)
