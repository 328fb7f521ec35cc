from django.core.management.base import BaseCommand, CommandError

from taskhub.models import ApiClient, Organization


class Command(BaseCommand):
    help = (
        "Create an OAuth2 API client for an existing organization. Prints client_id and client_secret; "
        "the secret is shown only this once."
    )

    def add_arguments(self, parser):
        parser.add_argument("org_slug", help="Slug of an existing organization, e.g. acme")
        parser.add_argument("--name", default="", help="A label for the client, e.g. the integrator's system")

    def handle(self, *args, org_slug: str, name: str, **options):
        organization = Organization.objects.filter(slug=org_slug).first()
        if organization is None:
            raise CommandError(f"No organization with slug '{org_slug}'. Create it first (e.g. in the admin).")
        client, secret = ApiClient.issue(organization, name=name)
        self.stdout.write(f"client_id={client.client_id}\nclient_secret={secret}")
