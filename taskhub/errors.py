"""The one error envelope of the API: {"error": {"type", "message", "fields"?}}."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

MESSAGES = {
    "missing_authorization": (
        "Your request does not include an 'Authorization' header with a bearer token for your account."
    ),
    "expired_token": (
        "The bearer token you have provided in the 'Authorization' header has expired. Please obtain a new one."
    ),
    "invalid_authorization": "The bearer token you have provided in the 'Authorization' header is invalid.",
}


class DomainError(Exception):
    """An error a service raises; the API turns it into the envelope."""

    type = "validation_error"
    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, fields: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class ValidationFailed(DomainError):
    pass


class NotFound(DomainError):
    type = "not_found"
    status_code = status.HTTP_404_NOT_FOUND


class Conflict(DomainError):
    type = "conflict"
    status_code = status.HTTP_409_CONFLICT


def envelope(type_: str, message: str, fields: dict | None = None) -> dict:
    error: dict[str, Any] = {"type": type_, "message": message}
    if fields:
        error["fields"] = fields
    return {"error": error}


def _flatten(detail: Any) -> Any:
    """DRF error details to plain strings (lists of messages, nested per field)."""
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _summary(fields: dict) -> str:
    names = ", ".join(sorted(fields)) if fields else ""
    return f"Invalid input: {names}." if names else "Invalid input."


# DRF exception class -> (error type, status), most specific first.
_DRF_TYPES: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.NotAuthenticated, "missing_authorization"),
    (exceptions.NotFound, "not_found"),
    (exceptions.PermissionDenied, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.Throttled, "rate_limited"),
    (exceptions.ParseError, "malformed_request"),
]


def _message(exc: exceptions.APIException, type_: str, context: dict) -> str:
    """Messages that tell the caller what to do instead."""
    if type_ == "not_found":
        return "Not found."
    if type_ == "unsupported_media_type":
        request = context.get("request")
        accepted = ", ".join(parser.media_type for parser in getattr(request, "parsers", None) or [])
        return f"{exc.detail} Send one of: {accepted}." if accepted else str(exc.detail)
    if type_ == "rate_limited" and getattr(exc, "wait", None):
        return f"Your organization's request rate limit is exhausted; retry in {int(exc.wait)} seconds."
    return MESSAGES.get(type_) or str(exc.detail)


def _in_use_message(exc: ProtectedError | RestrictedError) -> str:
    """A delete refused by a PROTECT/RESTRICT foreign key: say what still uses the object."""
    users = getattr(exc, "protected_objects", None) or getattr(exc, "restricted_objects", None) or []
    names = sorted({str(obj._meta.verbose_name_plural) for obj in users})
    return "This object is still in use" + (f" by {', '.join(names)}" if names else "") + "; it cannot be deleted."


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, DomainError):
        set_rollback()
        return Response(envelope(exc.type, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, (ProtectedError, RestrictedError)):
        set_rollback()
        return Response(envelope("conflict", _in_use_message(exc)), status=status.HTTP_409_CONFLICT)
    if isinstance(exc, (Http404, DjangoPermissionDenied)):
        exc = exceptions.NotFound()
    if not isinstance(exc, exceptions.APIException):
        return None
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    set_rollback()
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail) if isinstance(exc.detail, dict) else {"non_field_errors": _flatten(exc.detail)}
        body = envelope("validation_error", _summary(fields), fields)
        return Response(body, status=400, headers=headers)
    if isinstance(exc, exceptions.AuthenticationFailed):
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else "invalid_authorization"
        code = code if code in MESSAGES else "invalid_authorization"
        return Response(envelope(code, MESSAGES[code]), status=401, headers=headers)
    for cls, type_ in _DRF_TYPES:
        if isinstance(exc, cls):
            status_code = 404 if type_ == "not_found" else exc.status_code
            return Response(envelope(type_, _message(exc, type_, context)), status=status_code, headers=headers)
    return Response(envelope("error", str(exc.detail)), status=exc.status_code, headers=headers)


def json_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(envelope("not_found", "Not found."), status=404)


def json_server_error(request) -> JsonResponse:
    return JsonResponse(envelope("server_error", "Something went wrong on our side; it has been logged."), status=500)
