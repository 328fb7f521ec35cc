"""What `make run` prepares: an admin login that survives reruns and an API token that works."""

import importlib.util
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from taskhub.models import Membership, Organization

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "demo_access.py"


@pytest.fixture
def demo_access():
    spec = importlib.util.spec_from_file_location("demo_access", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def demo_org(db) -> Organization:
    return Organization.objects.create(slug="demo", name="Demo")


def test_admin_password_is_generated_once_and_reused(demo_access, tmp_path):
    first = demo_access.admin_password(tmp_path)

    assert len(first) >= 16
    assert demo_access.admin_password(tmp_path) == first
    assert (tmp_path / "admin-password").stat().st_mode & 0o077 == 0


def test_admin_is_reset_to_the_stored_password_and_joins_the_demo_org(demo_access, demo_org, client):
    demo_access.reset_admin("first-password-1")
    demo_access.reset_admin("second-password-2")

    assert client.login(username="admin", password="second-password-2")
    assert Membership.objects.filter(organization=demo_org, user__username="admin").count() == 1


def test_printed_token_answers_api_me_for_the_demo_org(demo_access, demo_org):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {demo_access.api_token()}")

    response = api.get("/api/me")

    assert response.status_code == 200
    assert response.json()["organization"]["slug"] == "demo"
