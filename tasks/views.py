"""Task pages outside the API: signed file links."""

from django.conf import settings
from django.http import FileResponse, Http404, HttpRequest
from django.views.decorators.http import require_GET

from .attachments import IMAGE_TYPES, attachment_from_link


@require_GET
def attachment_file(request: HttpRequest, token: str) -> FileResponse:
    """Serve a file to whoever holds its signed link; pictures inline, anything else as a download."""
    attachment = attachment_from_link(token, settings.ATTACHMENT_LINK_MAX_AGE)
    if attachment is None:
        raise Http404
    response = FileResponse(
        attachment.file.open("rb"),
        content_type=attachment.content_type or "application/octet-stream",
        as_attachment=attachment.content_type not in IMAGE_TYPES,
        filename=attachment.filename or None,
    )
    response["Cache-Control"] = "private, max-age=3600"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response
