"""Request ids on every log line, carried from a web request into the Celery tasks it causes.

The id lives in a context variable. ``RequestIdMiddleware`` binds it for a request (taken from a
sane incoming ``X-Request-Id``, else generated) and returns it in the response header; the
``before_task_publish`` signal copies it into the message headers of every task published while
it is bound (including ``transaction.on_commit`` enqueues, which run in the request), and
``task_prerun`` binds it again in the worker. ``RequestIdFilter`` puts it on each record, so the
JSON formatter writes it as a field and one grep follows a request to the deliveries it caused.
"""

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from celery.signals import before_task_publish, task_postrun, task_prerun
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from pythonjsonlogger.json import JsonFormatter

HEADER = "X-Request-Id"
MESSAGE_HEADER = "taskhub_request_id"  # the Celery message header that carries the id
SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
NO_ID = "-"

request_id_var: ContextVar[str] = ContextVar("taskhub_request_id", default=NO_ID)
task_var: ContextVar[str] = ContextVar("taskhub_task", default="")

access_logger = logging.getLogger("taskhub.request")


def new_request_id() -> str:
    return uuid.uuid4().hex


def sane_request_id(value: str | None) -> str | None:
    """The incoming id if it is short and plain enough to log and echo back; else None."""
    value = (value or "").strip()
    return value if SANE_ID.match(value) else None


def current_request_id() -> str | None:
    value = request_id_var.get()
    return None if value == NO_ID else value


@contextmanager
def bound_request_id(value: str) -> Iterator[str]:
    """Bind `value` as the request id for the code inside the block."""
    token = request_id_var.set(value)
    try:
        yield value
    finally:
        request_id_var.reset(token)


class RequestIdFilter(logging.Filter):
    """Stamp each record with the bound request id (and the Celery task, in a worker)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        task = task_var.get()
        if task and not hasattr(record, "task"):
            record.task = task
        return True


def json_formatter() -> JsonFormatter:
    """One JSON object a line: time, level, logger, message, request id and any `extra` fields."""
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}{request_id}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )


class RequestIdMiddleware:
    """Bind a request id for the request, return it in X-Request-Id, and log one line per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = sane_request_id(request.headers.get(HEADER)) or new_request_id()
        request.request_id = request_id
        started = time.perf_counter()
        # Bound until the response is closed, so django.request's own lines (logged after the
        # middleware returns) carry it too; `clear_request_id` unbinds it.
        request_id_var.set(request_id)
        response = self.get_response(request)
        log_request(request, response, time.perf_counter() - started)
        # Travtus routes answer with their own request_id in this header (docs/api.md): keep it.
        if HEADER not in response:
            response[HEADER] = request_id
        return response


@receiver(request_finished, dispatch_uid="taskhub.logs.request_finished")
def clear_request_id(**kwargs) -> None:
    request_id_var.set(NO_ID)


def log_request(request: HttpRequest, response: HttpResponse, seconds: float) -> None:
    match = getattr(request, "resolver_match", None)
    fields = {
        "method": request.method,
        "path": request.path,
        "route": match.route if match else "",
        "status": response.status_code,
        "duration_ms": round(seconds * 1000, 1),
    }
    travtus_id = response.get(HEADER)
    if travtus_id and travtus_id != request.request_id:
        fields["travtus_request_id"] = travtus_id
    level = logging.WARNING if response.status_code >= 500 else logging.INFO
    access_logger.log(
        level, "%s %s %s %.0fms", request.method, request.path, response.status_code, seconds * 1000, extra=fields
    )


# --- Celery: carry the id in the message and bind it in the worker ---------------------------


@before_task_publish.connect(dispatch_uid="taskhub.logs.publish")
def add_request_id_to_message(headers: dict | None = None, **kwargs) -> None:
    request_id = current_request_id()
    if headers is not None and request_id and MESSAGE_HEADER not in headers:
        headers[MESSAGE_HEADER] = request_id


@task_prerun.connect(dispatch_uid="taskhub.logs.prerun")
def bind_request_id_in_worker(task_id: str | None = None, task=None, **kwargs) -> None:
    """A task caused by a request logs under that request's id; one from beat under its own."""
    if task is None:
        return
    request_id = getattr(task.request, MESSAGE_HEADER, None)
    if not request_id and isinstance(task.request.headers, dict):
        request_id = task.request.headers.get(MESSAGE_HEADER)
    request_id = sane_request_id(request_id) or current_request_id() or f"task-{task_id}"
    # Kept on the task's own request context, so an eagerly run task hands the caller's id back.
    task.request.taskhub_log_tokens = (request_id_var.set(request_id), task_var.set(task.name))


@task_postrun.connect(dispatch_uid="taskhub.logs.postrun")
def unbind_request_id_in_worker(task=None, **kwargs) -> None:
    tokens = getattr(task.request, "taskhub_log_tokens", None) if task is not None else None
    if tokens:
        request_id_var.reset(tokens[0])
        task_var.reset(tokens[1])
