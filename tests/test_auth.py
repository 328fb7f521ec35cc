"""Bearer authentication: the three spec 401 bodies, /api/me, tokens hashed at rest."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from taskhub.errors import MESSAGES
from taskhub.models import AccessToken, Organization

pytestmark = pytest.mark.django_db


def get_me(header: str | None):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client.get("/api/me")


def assert_spec_401(response, type_: str) -> None:
    assert response.status_code == 401
    assert response.json() == {"error": {"type": type_, "message": MESSAGES[type_]}}
    assert response["WWW-Authenticate"] == "Bearer"


def test_me_returns_the_callers_organization_and_expiry(api, org):
    body = api.get("/api/me").json()
    assert body["organization"] == {"slug": "acme", "name": "Acme Field Services", "timezone": "America/New_York"}
    assert body["token"]["expires_at"] is not None


def test_missing_header_gets_missing_authorization():
    assert_spec_401(get_me(None), "missing_authorization")


def test_expired_token_gets_expired_token(org):
    token, raw = AccessToken.issue(org, ttl=60)
    AccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert_spec_401(get_me(f"Bearer {raw}"), "expired_token")


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer thk_" + "x" * 43, "Bearer thk_" + "é" * 300],
)
def test_malformed_or_unknown_token_gets_invalid_authorization(org, header):
    assert_spec_401(get_me(header), "invalid_authorization")


def test_revoked_token_gets_invalid_authorization(org):
    token, raw = AccessToken.issue(org)
    assert get_me(f"Bearer {raw}").status_code == 200
    AccessToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
    assert_spec_401(get_me(f"Bearer {raw}"), "invalid_authorization")


def test_tokens_are_stored_only_as_hashes(org):
    _, raw = AccessToken.issue(org)
    assert len(raw) >= 4 + 43  # prefix + 256 bits in URL-safe base64
    stored = AccessToken.objects.values_list("token_hash", "prefix", "name").get()
    assert all(raw not in str(value) for value in stored)
    assert raw[12:] not in "".join(stored)


def test_create_api_token_creates_the_org_and_prints_a_working_token(capsys):
    call_command("create_api_token", "newco", "--ttl", "600")
    raw = capsys.readouterr().out.strip()
    assert "\n" not in raw
    assert Organization.objects.filter(slug="newco").exists()
    response = get_me(f"Bearer {raw}")
    assert response.status_code == 200
    assert response.json()["organization"]["slug"] == "newco"


@pytest.mark.parametrize(("args", "message"), [(["Not A Slug"], "not a valid slug"), (["ok", "--ttl", "0"], "--ttl")])
def test_create_api_token_refuses_bad_options_and_writes_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", *args)
    assert not Organization.objects.exists()
    assert not AccessToken.objects.exists()


def test_unknown_api_route_answers_the_envelope(api):
    response = api.get("/api/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
