"""Security: secrets only hashed at rest, failed-auth limits, security headers, tracker token entropy."""

import os
import re
from io import StringIO
from urllib.parse import urlencode

import pytest
import redis
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from taskhub.models import ApiClient
from tasks.models import Task, new_tracker_token
from tasks.services import TaskChanges, task_upsert

pytestmark = [pytest.mark.requires_redis, pytest.mark.django_db]

TOKEN_URL = "/api/oauth2/token"
FORM = "application/x-www-form-urlencoded"


@pytest.fixture(autouse=True)
def fresh_counters():
    """Failure counters live in this suite's own Redis database: start each test from zero."""
    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()


def every_text_value() -> str:
    """Every text, varchar and json column of every table in the database, as one string."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND data_type IN ('text', 'character varying', 'json', 'jsonb')"
        )
        columns = cursor.fetchall()
        values = []
        for table, column in columns:
            cursor.execute(f'SELECT "{column}"::text FROM "{table}"')  # noqa: S608 - names from the catalogue
            values.extend(row[0] for row in cursor.fetchall() if row[0])
    return "\n".join(values)


def test_a_database_dump_contains_no_usable_token_or_client_secret(org, api):
    out = StringIO()
    call_command("create_api_client", org.slug, "--name", "crm", stdout=out)
    client_id, client_secret = re.search(r"(thc_\w+)", out.getvalue())[1], re.search(r"(ths_[\w-]+)", out.getvalue())[1]
    grant = urlencode({"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret})
    access_token = APIClient().post(TOKEN_URL, grant, content_type=FORM).json()["access_token"]
    out = StringIO()
    call_command("create_api_token", org.slug, stdout=out)
    command_token = re.search(r"(thk_[\w-]+)", out.getvalue())[1]
    bearer = APIClient()
    bearer.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token}")
    endpoint = bearer.post("/api/webhooks/endpoints/", {"url": "https://hooks.example.com/in"}, format="json")
    assert endpoint.status_code == 201
    assert bearer.get("/api/me").status_code == 200

    dump = every_text_value()

    for secret in (client_secret, access_token, command_token):
        assert secret not in dump
        assert secret[4:] not in dump, "not even without its prefix"
    assert ApiClient.objects.get(client_id=client_id).check_secret(client_secret)


# --- failed-auth limits -----------------------------------------------------------------------


def token_request(client_id: str, secret: str):
    grant = urlencode({"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret})
    return APIClient().post(TOKEN_URL, grant, content_type=FORM)


def test_the_token_endpoint_refuses_even_the_right_secret_after_too_many_failures(org, settings, window_start):
    settings.API_TOKEN_FAILURE_LIMIT = "3/minute"
    client, secret = ApiClient.issue(org, name="crm")

    failures = [token_request(client.client_id, f"ths_wrong{i}").status_code for i in range(3)]
    blocked = token_request(client.client_id, secret)

    assert failures == [401, 401, 401]
    assert blocked.status_code == 429
    assert blocked.json()["error"] == "too_many_requests"
    assert int(blocked["Retry-After"]) > 0


def test_the_token_endpoint_serves_the_right_secret_under_the_limit(org, settings):
    settings.API_TOKEN_FAILURE_LIMIT = "3/minute"
    client, secret = ApiClient.issue(org, name="crm")
    token_request(client.client_id, "ths_wrong")

    assert token_request(client.client_id, secret).status_code == 200


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("dispatch", "d@acme.test", "pw-correct-horse-1", is_staff=True)


def admin_login(client, password: str, username: str = "dispatch"):
    return client.post("/admin/login/", {"username": username, "password": password, "next": "/admin/"})


def test_the_admin_login_refuses_even_the_right_password_after_too_many_failures(client, staff, settings, window_start):
    settings.ADMIN_LOGIN_FAILURE_LIMIT = "3/minute"

    failures = [admin_login(client, f"guess-{i}").status_code for i in range(3)]
    blocked = admin_login(client, "pw-correct-horse-1")

    assert failures == [200, 200, 200]  # the form again, with its error
    assert blocked.status_code == 200
    assert "Too many failed logins" in blocked.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_admin_login_limit_counts_per_ip_across_usernames(client, staff, settings, window_start):
    settings.ADMIN_LOGIN_FAILURE_LIMIT = "3/minute"
    for name in ("alice", "bob", "carol"):
        admin_login(client, "guess", username=name)

    assert "Too many failed logins" in admin_login(client, "pw-correct-horse-1").content.decode()


def test_the_admin_login_lets_the_right_password_in_under_the_limit(client, staff, settings):
    settings.ADMIN_LOGIN_FAILURE_LIMIT = "3/minute"
    admin_login(client, "guess")

    response = admin_login(client, "pw-correct-horse-1")

    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(staff.pk)


# --- security headers on HTML pages -----------------------------------------------------------


@pytest.fixture
def tracked_task(org) -> Task:
    return task_upsert(organization=org, external_id="hdr-1", changes=TaskChanges(fields={"title": "Boiler"})).task


@pytest.mark.parametrize("page", ["/admin/login/", "/api/docs/", "/api/redoc/", "tracker"])
def test_every_html_page_carries_the_security_headers(client, tracked_task, page):
    path = f"/t/{tracked_task.url_safe_id}" if page == "tracker" else page

    response = client.get(path, secure=True)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"]
    framing = response.get("X-Frame-Options") or ""
    assert framing == "DENY" or "frame-ancestors" in response.get("Content-Security-Policy", ""), page
    assert "max-age=31536000" in response["Strict-Transport-Security"]


# --- the tracker token ------------------------------------------------------------------------


def test_tracker_tokens_carry_at_least_128_bits_and_never_repeat(org):
    tokens = [new_tracker_token() for _ in range(20_000)]
    tasks = [
        task_upsert(organization=org, external_id=f"t-{i}", changes=TaskChanges(fields={"title": "x"})).task
        for i in range(100)
    ]

    for token in [*tokens, *(task.url_safe_id for task in tasks)]:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", token), token
    assert len(set(tokens)) == len(tokens)
    assert len({task.url_safe_id for task in tasks}) == len(tasks)
    # 22 URL-safe characters carry 132 bits; check the characters are not drawn from a narrow set.
    assert len(set("".join(tokens))) == 64
