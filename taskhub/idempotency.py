"""Idempotency-Key for unsafe API requests: one effect per key, the first response replayed.

Apply it to a view's POST/PUT/PATCH handler in one line::

    from taskhub.idempotency import idempotent

    class TaskUpsertView(APIView):
        @idempotent
        def put(self, request, external_id): ...

    class GroupViewSet(viewsets.ModelViewSet):
        create = idempotent(mixins.CreateModelMixin.create)   # an inherited action

When a request carries ``Idempotency-Key`` (1-255 printable ASCII characters):

- the first request for (organization, key, route) runs, and its response (any status below
  500) is stored in the same transaction as the handler's writes;
- a retry with the same body within ``settings.IDEMPOTENCY_TTL_SECONDS`` (24 h) gets that
  response again, verbatim, with ``Idempotent-Replayed: true``, and has no effect;
- the same key with a different body answers 409 ``conflict``;
- a parallel request with the same key waits for the first to finish and then replays it, or
  answers 409 ``conflict`` ("in progress") after ``settings.IDEMPOTENCY_WAIT_SECONDS``;
- 5xx responses and unhandled errors are not stored (the transaction is rolled back), so the
  client may retry; older keys are ignored, and ``prune_idempotency_records()`` deletes them.

The route is the method and the concrete path, so one key reused on two resources is two
requests. Without the header, or for a caller that is not an organization, the handler simply
runs. Handlers return DRF ``Response`` objects with JSON data; anything else is not stored.

How it works: the record is reserved with an INSERT inside a savepoint of the request's
transaction. PostgreSQL makes a second INSERT of the same (organization, key, route) wait
until the first transaction ends, which is what serializes parallel duplicates; the wait is
bounded by a transaction-local ``lock_timeout``.
"""

import functools
import hashlib
import json
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.http import HttpResponseBase, RawPostDataException
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from .auth import ApiPrincipal
from .errors import Conflict, ValidationFailed
from .models import IdempotencyRecord, Organization

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
STORED_HEADERS = ("Location",)
LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL SQLSTATE raised when lock_timeout expires

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    HEADER,
    str,
    OpenApiParameter.HEADER,
    required=False,
    description=(
        "A unique key (e.g. a UUID) making this request safe to retry: for 24 hours a retry with the same "
        f"key and body returns the first response with `{REPLAYED_HEADER}: true`; a different body is a 409."
    ),
)


def idempotent(handler: Callable) -> Callable:
    """Decorate a DRF view handler (or an inherited action) to honour Idempotency-Key."""

    @functools.wraps(handler)
    def wrapper(view, request: Request, *args, **kwargs) -> HttpResponseBase:
        return run_idempotent(view, request, lambda: handler(view, request, *args, **kwargs))

    # extend_schema writes into `kwargs`; functools.wraps shares the handler's dict, so copy it.
    wrapper.kwargs = dict(getattr(handler, "kwargs", {}))
    return extend_schema(parameters=[IDEMPOTENCY_KEY_PARAMETER])(wrapper)


def run_idempotent(view, request: Request, call: Callable[[], HttpResponseBase]) -> HttpResponseBase:
    key = request.headers.get(HEADER)
    if key is None or not isinstance(request.user, ApiPrincipal):
        return call()
    key = clean_key(key)
    organization = request.user.organization
    route, fingerprint = route_of(request), fingerprint_of(request)
    with transaction.atomic():
        record, created = reserve(organization, key, route, fingerprint)
        if not created:
            return replay(record, fingerprint)
        response = run_handler(view, call)
        if response.status_code >= 500 or not isinstance(response, Response):
            record.delete()
        else:
            store(record, response)
    return response


def clean_key(key: str) -> str:
    key = key.strip()
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        message = f"The {HEADER} header must be 1 to 255 printable ASCII characters."
        raise ValidationFailed(message, {HEADER: [message]})
    return key


def route_of(request: Request) -> str:
    route = f"{request.method} {request.path}"
    if len(route) > 255:
        route = f"{request.method} sha256:{hashlib.sha256(request.path.encode()).hexdigest()}"
    return route


def fingerprint_of(request: Request) -> str:
    """SHA-256 of the body; of the parsed fields and file contents for multipart uploads."""
    digest = hashlib.sha256()
    if request.content_type.startswith("multipart/"):
        for name, values in sorted(request.data.lists()):
            for value in values:
                digest.update(f"{name}\0{getattr(value, 'name', '')}\0".encode())
                if hasattr(value, "chunks"):
                    for chunk in value.chunks():
                        digest.update(chunk)
                    value.seek(0)
                else:
                    digest.update(str(value).encode())
        return digest.hexdigest()
    try:
        digest.update(request.body)
    except RawPostDataException:  # something read the stream already; the parsed data stands in
        digest.update(json.dumps(request.data, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def reserve(organization: Organization, key: str, route: str, fingerprint: str) -> tuple[IdempotencyRecord, bool]:
    """(record, True) when this request is the first; (the stored record, False) otherwise."""
    cutoff = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    lookup = IdempotencyRecord.objects.filter(organization=organization, key=key, route=route)
    for _ in range(3):  # the competing row may vanish (rolled back, expired) between our statements
        try:
            with transaction.atomic():
                record = _insert_waiting(organization=organization, key=key, route=route, fingerprint=fingerprint)
            return record, True
        except IntegrityError:
            existing = lookup.first()
        if existing is not None and existing.created_at >= cutoff:
            return existing, False
        if existing is not None:
            lookup.filter(created_at__lt=cutoff).delete()
    raise Conflict("A request with this Idempotency-Key is in progress; retry shortly.")


def _insert_waiting(**fields) -> IdempotencyRecord:
    """INSERT the record, waiting at most IDEMPOTENCY_WAIT_SECONDS for a parallel duplicate to finish."""
    if connection.vendor != "postgresql":
        return IdempotencyRecord.objects.create(**fields)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('lock_timeout', %s, true)", [f"{int(settings.IDEMPOTENCY_WAIT_SECONDS * 1000)}ms"]
        )
    try:
        record = IdempotencyRecord.objects.create(**fields)
    except OperationalError as error:
        if getattr(error.__cause__, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            raise Conflict("A request with this Idempotency-Key is in progress; retry shortly.") from error
        raise
    with connection.cursor() as cursor:
        # The setting is transaction-local; restore it so the handler's own statements wait as usual.
        cursor.execute("SET LOCAL lock_timeout TO DEFAULT")
    return record


def run_handler(view, call: Callable[[], HttpResponseBase]) -> HttpResponseBase:
    """Run the handler in a savepoint; a handled error rolls back its writes and becomes a response."""
    try:
        with transaction.atomic():
            return call()
    except Exception as exc:  # DRF decides: an error response, or re-raised as a 500
        return view.handle_exception(exc)


def store(record: IdempotencyRecord, response: Response) -> None:
    body = JSONRenderer().render(response.data).decode() if response.data is not None else ""
    record.response_status = response.status_code
    record.response_body = body
    record.response_headers = {name: response[name] for name in STORED_HEADERS if name in response}
    record.save(update_fields=["response_status", "response_body", "response_headers"])


def replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        raise Conflict(
            "This Idempotency-Key was already used with a different request body.", {HEADER: ["Key reused."]}
        )
    data = json.loads(record.response_body) if record.response_body else None
    headers = {**record.response_headers, REPLAYED_HEADER: "true"}
    return Response(data, status=record.response_status, headers=headers)


def prune_idempotency_records(now=None) -> int:
    """Delete records past their replay window; returns how many went. For a periodic job."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
