"""OAuth2 client credentials: token exchange, RFC 6749 errors, failure limiting, create_api_client."""

import base64
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from taskhub.models import AccessToken, ApiClient
from taskhub.ratelimit import redis_client

pytestmark = pytest.mark.django_db
TOKEN_URL = "/api/oauth2/token"


@pytest.fixture(autouse=True)
def clean_counters(settings):
    """Failure counters live in Redis (or the cache); start every test from zero."""
    if settings.REDIS_URL:
        redis_client(settings.REDIS_URL).flushdb()
    else:
        cache.clear()


@pytest.fixture
def client_pair(org) -> tuple[ApiClient, str]:
    return ApiClient.issue(org, name="dispatch system")


def post_token(data: dict, client: APIClient | None = None, **extra):
    client = client or APIClient()
    return client.post(TOKEN_URL, urlencode(data), content_type="application/x-www-form-urlencoded", **extra)


def grant(client_id: str, secret: str) -> dict:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}


def assert_oauth_error(response, status: int, code: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == code
    assert body["error_description"]
    assert response["Cache-Control"] == "no-store"


def test_client_credentials_give_a_bearer_token_that_opens_me(client_pair, settings):
    client, secret = client_pair
    response = post_token(grant(client.client_id, secret))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}
    assert body["expires_in"] == settings.API_TOKEN_TTL_SECONDS == 3600
    assert body["token_type"] == "Bearer"
    assert response["Cache-Control"] == "no-store"
    me = APIClient(HTTP_AUTHORIZATION=f"Bearer {body['access_token']}").get("/api/me")
    assert me.status_code == 200
    assert me.json()["organization"]["slug"] == "acme"
    assert AccessToken.objects.get().client == client


def test_token_lifetime_comes_from_settings(client_pair, settings):
    settings.API_TOKEN_TTL_SECONDS = 120
    client, secret = client_pair
    body = post_token(grant(client.client_id, secret)).json()
    assert body["expires_in"] == 120
    remaining = (AccessToken.objects.get().expires_at - timezone.now()).total_seconds()
    assert 100 < remaining <= 120


def test_http_basic_client_authentication_is_accepted(client_pair):
    client, secret = client_pair
    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    response = post_token({"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


def test_credentials_in_both_basic_and_body_are_an_invalid_request(client_pair):
    client, secret = client_pair
    basic = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    response = post_token(grant(client.client_id, secret), HTTP_AUTHORIZATION=f"Basic {basic}")
    assert_oauth_error(response, 400, "invalid_request")


def test_missing_grant_type_is_an_invalid_request(client_pair):
    client, secret = client_pair
    response = post_token({"client_id": client.client_id, "client_secret": secret})
    assert_oauth_error(response, 400, "invalid_request")
    assert not AccessToken.objects.exists()


def test_other_grant_types_are_unsupported(client_pair):
    client, secret = client_pair
    response = post_token({**grant(client.client_id, secret), "grant_type": "password"})
    assert_oauth_error(response, 400, "unsupported_grant_type")
    assert not AccessToken.objects.exists()


@pytest.mark.parametrize("case", ["wrong secret", "unknown client", "missing secret", "revoked client"])
def test_bad_client_credentials_are_an_invalid_client(client_pair, case):
    client, secret = client_pair
    data = grant(client.client_id, secret)
    if case == "wrong secret":
        data["client_secret"] = secret + "x"
    elif case == "unknown client":
        data["client_id"] = "thc_unknown"
    elif case == "missing secret":
        del data["client_secret"]
    else:
        ApiClient.objects.filter(pk=client.pk).update(revoked_at=timezone.now())
    response = post_token(data)
    assert_oauth_error(response, 401, "invalid_client")
    assert response["WWW-Authenticate"].startswith("Basic")
    assert not AccessToken.objects.exists()


def test_a_json_body_is_an_invalid_request_in_the_oauth_shape(client_pair):
    client, secret = client_pair
    response = APIClient().post(TOKEN_URL, grant(client.client_id, secret), format="json")
    assert_oauth_error(response, 400, "invalid_request")


def test_repeated_failures_lock_the_client_id_and_the_ip_for_the_window(client_pair, org, settings, window_start):
    settings.API_TOKEN_FAILURE_LIMIT = "3/minute"
    client, secret = client_pair
    for _ in range(3):
        assert post_token(grant(client.client_id, "ths_wrong")).status_code == 401
    locked = post_token(grant(client.client_id, secret))  # even the right secret waits now
    assert_oauth_error(locked, 429, "too_many_requests")
    assert 0 < int(locked["Retry-After"]) <= 60
    other, other_secret = ApiClient.issue(org)
    from_elsewhere = post_token(grant(other.client_id, other_secret), REMOTE_ADDR="10.0.0.2")
    assert from_elsewhere.status_code == 200


def test_create_api_client_prints_two_lines_and_the_credentials_work(org, capsys):
    call_command("create_api_client", "acme", "--name", "CRM")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("client_id=thc_")
    assert lines[1].startswith("client_secret=ths_")
    client_id, secret = lines[0].partition("=")[2], lines[1].partition("=")[2]
    stored = ApiClient.objects.get()
    assert (stored.client_id, stored.name, stored.organization) == (client_id, "CRM", org)
    assert secret not in stored.secret_hash
    assert post_token(grant(client_id, secret)).status_code == 200


def test_create_api_client_refuses_an_unknown_organization_and_writes_nothing(org):
    with pytest.raises(CommandError, match="No organization with slug 'nope'"):
        call_command("create_api_client", "nope")
    assert not ApiClient.objects.exists()
