"""Fuzzing the API from its own OpenAPI schema: no 5xx, responses match the schema, errors use the envelope.

Every operation of `/api/schema/` gets FUZZ_EXAMPLES generated requests (default 8; raise it
locally, e.g. `FUZZ_EXAMPLES=200`), valid and invalid, sent through the WSGI app with a real
bearer token against real PostgreSQL and Redis. The organization has a task, a group, a unit,
a person, a resource and a webhook endpoint, so requests for known ids reach the handlers too.
"""

import os

import pytest
import schemathesis
from django.core.signals import request_finished
from schemathesis.checks import CheckContext
from schemathesis.config import HealthCheck
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from taskhub.models import AccessToken, ApiClient, Organization
from taskhub.wsgi import application
from tasks.models import Group, Person, Resource, Unit
from tasks.services import TaskChanges, task_upsert
from webhooks.models import Endpoint

pytestmark = [pytest.mark.requires_redis, pytest.mark.django_db(transaction=True)]

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
OAUTH_TOKEN_PATH = "/api/oauth2/token"


@pytest.fixture(autouse=True)
def _end_of_each_request():
    """schemathesis reads each WSGI response without closing it, so Django never signals that the
    request ended; signal it after each case, as a server does once the response is out. Otherwise
    the sends the last request left for after its response (taskhub.oncommit) wait in this thread,
    and so does whatever a later test in this thread commits."""
    yield
    request_finished.send(sender=__name__)


@pytest.fixture
def raw_token(settings) -> str:
    """A real bearer token of an organization that has one row of every kind."""
    settings.API_RATE_LIMIT = "1000000/minute"  # the fuzzer is one busy client, not a flood to refuse
    settings.API_TOKEN_FAILURE_LIMIT = "1000000/minute"
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    org = Organization.objects.create(slug="fuzz", name="Fuzz Org", timezone="America/New_York")
    known_rows(org)
    return AccessToken.issue(org, ttl=3600)[1]


def known_rows(org: Organization) -> None:
    group = Group.objects.create(organization=org, name="North", external_ref="north")
    Unit.objects.create(organization=org, group=group, unit_number="1A", external_ref="1a")
    Person.objects.create(organization=org, first_name="Kim", email="kim@example.com", is_crew=True)
    Resource.objects.create(organization=org, name="Van", external_id="van-1")
    task_upsert(organization=org, external_id="job-1", changes=TaskChanges(fields={"title": "Fix sink"}))
    Endpoint.objects.create(organization=org, url="https://hooks.example.com/in")
    ApiClient.issue(org, name="fuzz")


def envelope_on_errors(ctx: CheckContext, response, case) -> bool | None:
    """Every 4xx is the error envelope; the token endpoint alone answers in the RFC 6749 shape."""
    if not 400 <= response.status_code < 500:
        return None
    body = response.json()
    if case.path == OAUTH_TOKEN_PATH:
        assert set(body) == {"error", "error_description"}, body
        assert isinstance(body["error"], str)
        return True
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), dict), body
    assert isinstance(body["error"].get("type"), str), body
    assert isinstance(body["error"].get("message"), str), body
    return True


def no_server_error(ctx: CheckContext, response, case) -> bool | None:
    assert response.status_code < 500, f"{case.method} {case.formatted_path} answered {response.status_code}"
    return True


def load_schema():
    """The app's own schema, fetched through WSGI: the same document integrators download."""
    loaded = schemathesis.openapi.from_wsgi("/api/schema/", application)
    loaded.config.update(suppress_health_check=[HealthCheck.all])
    loaded.config.generation.update(max_examples=FUZZ_EXAMPLES, allow_x00=False, database="none")
    loaded.config.phases.update(phases=["examples", "fuzzing"])
    return loaded


schema = load_schema()


@schema.parametrize()
def test_every_operation_answers_without_server_errors_and_as_documented(case, raw_token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {raw_token}"},
        checks=[
            no_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            envelope_on_errors,
        ],
    )
