"""Files, notes and pictures on tasks: checked on the way in, handed out only through signed links."""

import mimetypes

from django.conf import settings
from django.core import signing
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.urls import reverse
from PIL import Image, UnidentifiedImageError

from taskhub.errors import ValidationFailed

from .models import Attachment, Task, TaskStatus

ALLOWED_TYPES = {
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
}
IMAGE_TYPES = {t for t in ALLOWED_TYPES if t.startswith("image/")}
LINK_SALT = "tasks.attachment"


def _content_type(upload: UploadedFile) -> str:
    guessed, _ = mimetypes.guess_type(upload.name or "")
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    if guessed not in ALLOWED_TYPES or (declared and declared != "application/octet-stream" and declared != guessed):
        allowed = ", ".join(sorted(ALLOWED_TYPES))
        raise ValidationFailed(
            f"'{upload.name}' is not an accepted file type ({allowed}).", {"file": [f"Accepted types: {allowed}."]}
        )
    return guessed


def _check_image(upload: UploadedFile) -> None:
    """A picture must really be one: what is shown to customers is decoded by their browsers."""
    try:
        with Image.open(upload) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValidationFailed("The picture could not be read.", {"file": ["Not a valid image."]}) from exc
    finally:
        upload.seek(0)


@transaction.atomic
def attachment_create(
    *, task: Task, upload: UploadedFile | None, note: str = "", visible_to_customer: bool = False
) -> Attachment:
    """Store a file (or a note) on a task."""
    if upload is None and not note.strip():
        raise ValidationFailed("Send a file, a note, or both.", {"file": ["Send a file or a note."]})
    content_type, size = "", 0
    if upload is not None:
        if upload.size > settings.API_MAX_UPLOAD_BYTES:
            raise ValidationFailed(
                "The file is too large.", {"file": [f"At most {settings.API_MAX_UPLOAD_BYTES} bytes."]}
            )
        content_type, size = _content_type(upload), upload.size
        if content_type in IMAGE_TYPES:
            _check_image(upload)
    return Attachment.objects.create(
        organization_id=task.organization_id, task=task, file=upload, content_type=content_type, size=size,
        filename=(upload.name or "")[:255] if upload else "", note=note, visible_to_customer=visible_to_customer,
    )  # fmt: skip


def attach_to_status(entry: TaskStatus, attachment_ids: list) -> None:
    """Link a status report to files already uploaded to its task (Arrivy's extra_fields.files)."""
    ids = {int(i) for i in attachment_ids if str(i).isdigit()}
    attachments = Attachment.objects.filter(task_id=entry.task_id, pk__in=ids)
    if len(ids) != len(attachment_ids) or attachments.count() != len(ids):
        raise ValidationFailed(
            "extra_fields.files must list ids of this task's attachments.",
            {"extra_fields": {"files": ["Unknown attachment id for this task."]}},
        )
    attachments.update(status=entry)


def signed_url(attachment: Attachment) -> str:
    """An unguessable link to the file; it carries its own proof, so it can be shared with a customer."""
    token = signing.dumps(attachment.pk, salt=LINK_SALT, compress=True)
    return f"{settings.PUBLIC_BASE_URL}{reverse('attachment-file', args=[token])}"


def attachment_from_link(token: str, max_age: int) -> Attachment | None:
    try:
        pk = signing.loads(token, salt=LINK_SALT, max_age=max_age)
    except signing.BadSignature:
        return None
    return Attachment.objects.filter(pk=pk).exclude(file="").first()
