"""API edge limits: body size caps, request charset, and the X-RateLimit-* headers.

Only paths under /api/ are concerned. The body cap is checked before any view or parser runs,
so an oversize request writes nothing and costs no more than `limit + 1` bytes of reading, even
when it arrives chunked (no Content-Length).
"""

import codecs
import io
from collections.abc import Callable

from django.conf import settings
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, JsonResponse

from .errors import envelope
from .ratelimit import REQUEST_ATTR

API_PREFIX = "/api/"


def body_limit(request: HttpRequest) -> int:
    """Multipart uploads to an attachments route get the upload cap; everything else the body cap."""
    if request.path.rstrip("/").endswith("/attachments") and request.content_type == "multipart/form-data":
        return settings.API_MAX_UPLOAD_BYTES
    return settings.API_MAX_BODY_BYTES


def too_large(limit: int) -> JsonResponse:
    message = f"The request body is larger than the {limit} bytes this route accepts."
    return JsonResponse(envelope("payload_too_large", message), status=413)


def _is_chunked(request: HttpRequest) -> bool:
    transfer_encoding = request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    return "chunked" in transfer_encoding or bool(request.META.get("wsgi.input_terminated"))


def _buffer_unsized_body(request: HttpRequest, limit: int) -> bool:
    """Read a body sent without Content-Length, at most limit+1 bytes; False when it is too big.

    Django reads nothing when Content-Length is absent, so the buffered body is handed back
    to it with its now-known length.
    """
    body = request.META["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        return False
    request.META["CONTENT_LENGTH"] = str(len(body))
    request._stream = LimitedStream(io.BytesIO(body), len(body))
    return True


def check_body(request: HttpRequest) -> HttpResponse | None:
    """An error response when the body breaks a limit; None when it may go on."""
    limit = body_limit(request)
    raw_length = request.META.get("CONTENT_LENGTH") or ""
    if raw_length.strip():
        try:
            length = int(raw_length)
        except ValueError:
            return JsonResponse(envelope("malformed_request", "The Content-Length header is not a number."), status=400)
        if length > limit:
            return too_large(limit)
    elif _is_chunked(request) and "wsgi.input" in request.META and not _buffer_unsized_body(request, limit):
        return too_large(limit)
    charset = request.content_params.get("charset") if request.content_params else None
    if charset:
        try:
            codecs.lookup(charset)
        except LookupError:
            message = f"Unknown charset '{charset}' in Content-Type; send UTF-8 (application/json)."
            return JsonResponse(envelope("unsupported_media_type", message), status=415)
    return None


class ApiLimitsMiddleware:
    """Refuse oversize bodies early; stamp the rate-limit window on every API response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        response = check_body(request) or self.get_response(request)
        window = getattr(request, REQUEST_ATTR, None)
        if window is not None:
            for name, value in window.headers().items():
                response[name] = value
        return response
