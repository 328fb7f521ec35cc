"""Body caps, content types and malformed bodies: answered in the envelope, and nothing written."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tasks.models import Group

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.idempotency_urls")]


@pytest.fixture(autouse=True)
def small_caps(settings):
    settings.API_MAX_BODY_BYTES = 1000
    settings.API_MAX_UPLOAD_BYTES = 5000


def assert_error(response, status: int, type_: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["type"] == type_
    assert not Group.objects.exists()
    return error


def chunked(api, body: bytes):
    """A body sent with Transfer-Encoding: chunked, as a WSGI server hands it over: no Content-Length."""
    return api.generic(
        "POST",
        "/api/groups",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(body), "wsgi.input_terminated": True},
    )


def test_a_body_within_the_cap_is_served(api):
    response = api.post("/api/groups", {"name": "North"}, format="json")
    assert response.status_code == 201
    assert Group.objects.get().name == "North"


def test_an_oversize_body_gets_413(api):
    error = assert_error(api.post("/api/groups", {"name": "x" * 2000}, format="json"), 413, "payload_too_large")
    assert "1000 bytes" in error["message"]


def test_an_oversize_chunked_body_gets_413_without_reading_it_all(api):
    stream = io.BytesIO(json.dumps({"name": "x" * 50_000}).encode())
    response = api.generic(
        "POST",
        "/api/groups",
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": stream},
    )
    assert_error(response, 413, "payload_too_large")
    assert stream.tell() == 1001


def test_a_small_chunked_body_is_served(api):
    response = chunked(api, json.dumps({"name": "Chunked"}).encode())
    assert response.status_code == 201
    assert Group.objects.get().name == "Chunked"


def test_uploads_to_attachments_get_the_larger_upload_cap(api):
    upload = SimpleUploadedFile("photo.jpg", b"x" * 3000, content_type="image/jpeg")
    response = api.post("/api/groups/1/attachments", {"file": upload}, format="multipart")
    assert response.status_code == 201
    assert response.json() == {"size": 3000}


def test_uploads_past_the_upload_cap_get_413(api):
    upload = SimpleUploadedFile("photo.jpg", b"x" * 6000, content_type="image/jpeg")
    response = api.post("/api/groups/1/attachments", {"file": upload}, format="multipart")
    assert_error(response, 413, "payload_too_large")


def test_multipart_elsewhere_keeps_the_body_cap(api):
    upload = SimpleUploadedFile("photo.jpg", b"x" * 3000, content_type="image/jpeg")
    assert_error(api.post("/api/groups", {"file": upload}, format="multipart"), 413, "payload_too_large")


def test_text_plain_gets_415_naming_the_accepted_type(api):
    error = assert_error(
        api.post("/api/groups", "name=North", content_type="text/plain"), 415, "unsupported_media_type"
    )
    assert "text/plain" in error["message"]
    assert "application/json" in error["message"]


def test_an_unknown_charset_gets_415(api):
    response = api.post("/api/groups", b'{"name": "x"}', content_type="application/json; charset=klingon")
    assert "klingon" in assert_error(response, 415, "unsupported_media_type")["message"]


def test_malformed_json_gets_400_with_the_position(api):
    response = api.post("/api/groups", '{"name": "North",}', content_type="application/json")
    error = assert_error(response, 400, "malformed_request")
    assert "line 1 column 17" in error["message"]


def test_invalid_utf8_gets_400(api):
    response = api.post("/api/groups", b'{"name": "\xff\xfe"}', content_type="application/json")
    assert_error(response, 400, "malformed_request")


def test_a_non_numeric_content_length_gets_400(api):
    response = api.generic("POST", "/api/groups", b'{"name": "x"}', "application/json", CONTENT_LENGTH="ten")
    assert_error(response, 400, "malformed_request")
