"""Plain fixtures shared by the suite: organizations, tokens, API clients, dispatchers."""

import time
from datetime import UTC, datetime

import pytest
import time_machine
from rest_framework.test import APIClient

from taskhub.models import AccessToken, Membership, Organization


@pytest.fixture(autouse=True)
def _plain_static_files(settings):
    """The suite runs with DEBUG off but without collectstatic: serve static files unhashed."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
def org(db) -> Organization:
    return Organization.objects.create(slug="acme", name="Acme Field Services", timezone="America/New_York")


@pytest.fixture
def other_org(db) -> Organization:
    return Organization.objects.create(slug="globex", name="Globex", timezone="Europe/London")


@pytest.fixture
def token(org) -> str:
    return AccessToken.issue(org, ttl=3600)[1]


@pytest.fixture
def api(token) -> APIClient:
    """An API client authenticated as `org`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


@pytest.fixture
def other_api(other_org) -> APIClient:
    """An API client authenticated as `other_org`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.issue(other_org)[1]}")
    return client


@pytest.fixture
def dispatcher(org, django_user_model):
    """A staff user who is a member of `org` only."""
    user = django_user_model.objects.create_user("dispatch", "dispatch@acme.test", "pw-dispatch-1", is_staff=True)
    Membership.objects.create(organization=org, user=user)
    return user


@pytest.fixture
def dispatcher_client(client, dispatcher):
    client.force_login(dispatcher)
    return client


@pytest.fixture
def window_start():
    """Pin the clock 5 s into the next minute, so a test of a per-minute limit never straddles two
    of its fixed windows (the count would start again halfway)."""
    start = (int(time.time()) // 60 + 1) * 60 + 5
    with time_machine.travel(datetime.fromtimestamp(start, UTC), tick=False) as traveller:
        yield traveller
