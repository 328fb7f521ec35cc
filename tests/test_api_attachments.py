"""Files, notes and pictures: type and size limits, signed links, referenced from status reports."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from tasks.models import Attachment

pytestmark = pytest.mark.django_db


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), "#1f5fbf").save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture
def task_url(api) -> str:
    identifier = api.put("/api/express/tasks/upsert/f-1", {"title": "Fence"}, format="json").json()["identifier"]
    return f"/api/tasks/{identifier}"


def upload(api, url: str, name: str, content: bytes, content_type: str, **fields):
    file = SimpleUploadedFile(name, content, content_type=content_type)
    return api.post(f"{url}/attachments", {"file": file, **fields}, format="multipart")


def test_a_picture_is_stored_under_a_random_name_and_served_by_its_signed_link(api, client, task_url):
    response = upload(api, task_url, "fence.png", png_bytes(), "image/png", note="Before", visible_to_customer="true")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["filename"], body["content_type"], body["visible_to_customer"]) == ("fence.png", "image/png", True)
    stored = Attachment.objects.get().file.name
    assert "fence" not in stored
    path = body["url"].removeprefix("https://taskhub.test")
    served = client.get(path)
    assert served.status_code == 200
    assert b"".join(served.streaming_content) == png_bytes()
    assert client.get(path[:-3] + "xyz").status_code == 404
    listed = api.get(f"{task_url}/attachments").json()["results"]
    assert [a["id"] for a in listed] == [body["id"]]


@pytest.mark.parametrize(
    ("name", "content", "content_type"),
    [
        ("tool.exe", b"MZ\x90\x00", "application/octet-stream"),
        ("fake.png", b"not a picture", "image/png"),
        ("doc.pdf", b"%PDF-1.4", "image/png"),
    ],
)
def test_files_of_the_wrong_type_are_refused_naming_file(api, task_url, name, content, content_type):
    response = upload(api, task_url, name, content, content_type)
    assert response.status_code == 400
    assert "file" in response.json()["error"]["fields"]
    assert not Attachment.objects.exists()


def test_a_note_alone_is_fine_but_nothing_at_all_is_not(api, task_url):
    assert api.post(f"{task_url}/attachments", {"note": "Gate code 1234"}, format="multipart").status_code == 201
    assert api.post(f"{task_url}/attachments", {}, format="multipart").status_code == 400


def test_a_file_over_the_upload_cap_is_refused(api, task_url, settings):
    settings.API_MAX_UPLOAD_BYTES = 1024
    response = upload(api, task_url, "big.txt", b"x" * 4096, "text/plain")
    assert response.status_code in {400, 413}
    assert "error" in response.json()
    assert not Attachment.objects.exists()


def test_status_reports_reference_their_files_by_id(api, other_api, task_url):
    attachment_id = upload(api, task_url, "proof.pdf", b"%PDF-1.4 proof", "application/pdf").json()["id"]
    report = api.post(
        "/api/express/tasks/f-1/status/new",
        {"type": "COMPLETE", "extra_fields": {"files": [attachment_id]}},
        format="json",
    )
    assert report.status_code == 201, report.json()
    assert Attachment.objects.get().status_id == report.json()["id"]
    other_id = api.put("/api/express/tasks/upsert/f-2", {"title": "Other"}, format="json").json()["identifier"]
    refused = api.post(
        "/api/express/tasks/f-2/status/new",
        {"type": "STARTED", "extra_fields": {"files": [attachment_id]}},
        format="json",
    )
    assert refused.status_code == 400
    assert "extra_fields" in refused.json()["error"]["fields"]
    assert api.get(f"/api/tasks/{other_id}/statuses").json()["results"][-1]["type"] == "NOTSTARTED"
    assert other_api.get(f"{task_url}/attachments").status_code == 404
