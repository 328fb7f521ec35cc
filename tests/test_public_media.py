"""Logos and crew photos are served to tracker pages; attachments never leave but by signed link."""

from pathlib import Path

import pytest


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = tmp_path
    for name in ("logos/acme.png", "crew/dana.png", "attachments/1/secret.pdf"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"bytes of " + name.encode())
    return tmp_path


def test_logos_and_crew_photos_are_served_with_a_cache_header(client, media):
    for path in ("logos/acme.png", "crew/dana.png"):
        response = client.get(f"/media/{path}")
        assert response.status_code == 200
        assert b"".join(response.streaming_content) == f"bytes of {path}".encode()
        assert response["Cache-Control"] == "public, max-age=86400"


@pytest.mark.parametrize("path", ["attachments/1/secret.pdf", "logos/../attachments/1/secret.pdf", "logos/", "x"])
def test_attachments_and_anything_else_are_not(client, media, path):
    assert client.get(f"/media/{path}").status_code == 404
