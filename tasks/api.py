"""Task API views: thin adapters from HTTP to the task services."""

import uuid

from django.db.models import QuerySet
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from taskhub.errors import ValidationFailed
from taskhub.idempotency import idempotent

from . import arrivy, examples, travtus
from .models import Person, Task, TaskRequest, TaskStatus
from .parsing import DateTimeInputError, parse_datetime_in_zone
from .references import resolve_one
from .serializers import (
    StatusInSerializer,
    StatusOutSerializer,
    TaskOutSerializer,
    TravtusCreateSerializer,
    TravtusResponseSerializer,
    TravtusUpdateSerializer,
    UpsertSerializer,
)
from .services import task_delete, task_report_status


def org_tasks(request: Request) -> QuerySet[Task]:
    return (
        Task.objects.alive()
        .filter(organization=request.user.organization)
        .select_related("customer", "rating")
        .prefetch_related("addresses", "assignees", "resources")
    )


class OrgContextMixin:
    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "organization": self.request.user.organization}


def validated(serializer_class, request: Request, data=None) -> dict:
    serializer = serializer_class(data=request.data if data is None else data,
                                  context={"organization": request.user.organization})  # fmt: skip
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ItemsPerPagePagination(PageNumberPagination):
    """Arrivy's `page` / `items_per_page`."""

    page_size = 50
    page_size_query_param = "items_per_page"
    max_page_size = 500


# --- Arrivy-style routes ----------------------------------------------------------------------


class UpsertView(APIView):
    """Create or update a task by the integrator's own id (Arrivy's task upsert)."""

    @extend_schema(
        request=UpsertSerializer,
        responses={200: TaskOutSerializer, 201: TaskOutSerializer},
        examples=[examples.UPSERT_REQUEST, examples.TASK_RESPONSE],
    )
    @idempotent
    def put(self, request: Request, external_id: str) -> Response:
        data = validated(UpsertSerializer, request)
        result = arrivy.arrivy_upsert(organization=request.user.organization, external_id=external_id, data=data)
        body = result.representation if result.representation is not None else TaskOutSerializer(result.task).data
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)

    @extend_schema(
        request=UpsertSerializer,
        responses={200: TaskOutSerializer, 201: TaskOutSerializer},
        examples=[examples.UPSERT_REQUEST, examples.TASK_RESPONSE],
    )
    def post(self, request: Request, external_id: str) -> Response:
        return self.put(request, external_id)  # put honours Idempotency-Key for both methods


class ExpressTaskView(APIView):
    """One task by the integrator's id."""

    def get_object(self, request: Request, external_id: str) -> Task:
        task = org_tasks(request).filter(external_id=external_id).first()
        if task is None:
            raise Http404
        return task

    @extend_schema(responses=TaskOutSerializer)
    def get(self, request: Request, external_id: str) -> Response:
        return Response(TaskOutSerializer(self.get_object(request, external_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, external_id: str) -> Response:
        task_delete(task=self.get_object(request, external_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ExpressTaskListView(generics.ListAPIView):
    """Tasks of the organization, filtered the Arrivy way."""

    serializer_class = TaskOutSerializer
    pagination_class = ItemsPerPagePagination
    filter_backends: list = []

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Start at or after (naive: org time zone)"),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="Start before"),
            OpenApiParameter("entity_id", OpenApiTypes.STR, description="Assigned crew id or identifier"),
            OpenApiParameter("customer_id", OpenApiTypes.STR),
            OpenApiParameter("external_id", OpenApiTypes.STR),
            OpenApiParameter("unscheduled", OpenApiTypes.BOOL),
            OpenApiParameter("page", OpenApiTypes.INT),
            OpenApiParameter("items_per_page", OpenApiTypes.INT),
        ]
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> QuerySet[Task]:
        params, tasks = self.request.query_params, org_tasks(self.request).order_by("start_datetime", "id")
        zone = self.request.user.organization.tz
        for name, lookup in (("from", "start_datetime__gte"), ("to", "start_datetime__lt")):
            if params.get(name):
                try:
                    tasks = tasks.filter(**{lookup: parse_datetime_in_zone(params[name], zone)})
                except DateTimeInputError as exc:
                    raise ValidationFailed(str(exc), {name: [str(exc)]}) from None
        for name, lookups in (("entity_id", "assignees"), ("customer_id", "customer")):
            if params.get(name):
                tasks = tasks.filter(**ref_filter(lookups, params[name], name))
        if params.get("external_id"):
            tasks = tasks.filter(external_id=params["external_id"])
        if params.get("unscheduled") in {"true", "false"}:
            tasks = tasks.filter(unscheduled=params["unscheduled"] == "true")
        return tasks.distinct() if params.get("entity_id") else tasks


def ref_filter(relation: str, ref: str, param: str) -> dict:
    if ref.isdigit():
        return {f"{relation}__pk": int(ref)}
    try:
        return {f"{relation}__identifier": uuid.UUID(ref)}
    except ValueError:
        raise ValidationFailed(f"{param} must be an id or a UUID identifier.", {param: ["Not an id."]}) from None


class ExpressStatusNewView(APIView):
    """Report a status on a task (Arrivy's status/new)."""

    @extend_schema(request=StatusInSerializer, responses={201: StatusOutSerializer}, examples=[examples.STATUS_REQUEST])
    @idempotent
    def post(self, request: Request, external_id: str) -> Response:
        task = ExpressTaskView().get_object(request, external_id)
        data = validated(StatusInSerializer, request)
        entry = task_report_status(task=task, **status_arguments(request, data))
        return Response(StatusOutSerializer(entry).data, status=status.HTTP_201_CREATED)


def status_arguments(request: Request, data: dict) -> dict:
    """Arrivy puts notes and visible_to_customer under extra_fields; accept them at top level too."""
    extra = dict(data.get("extra_fields") or {})
    notes = data.get("notes", extra.pop("notes", ""))
    visible = data.get("visible_to_customer", extra.pop("visible_to_customer", True))
    files = extra.pop("files", None)
    if files is not None and not isinstance(files, list):
        raise ValidationFailed(
            "extra_fields.files must be a list of attachment ids.", {"extra_fields": {"files": ["Must be a list."]}}
        )
    reporter = None
    if data.get("reporter_id"):
        reporter = resolve_one(Person, request.user.organization, data["reporter_id"], "reporter_id")
    return {
        "type": data["type"],
        "time": data.get("time"),
        "source": data.get("source", TaskStatus.Source.API),
        "notes": notes if isinstance(notes, str) else str(notes),
        "visible_to_customer": visible,
        "reporter": reporter,
        "reporter_name": data.get("reporter_name", ""),
        "extra_fields": extra,
        "files": files,
    }


class ExpressStatusListView(generics.ListAPIView):
    """The task's status journal, oldest first."""

    serializer_class = StatusOutSerializer
    pagination_class = ItemsPerPagePagination
    filter_backends: list = []

    def get_queryset(self) -> QuerySet[TaskStatus]:
        task = ExpressTaskView().get_object(self.request, self.kwargs["external_id"])
        return TaskStatus.objects.filter(task=task).order_by("time", "id")


# --- Travtus-style routes ---------------------------------------------------------------------


class TravtusRequestMixin:
    """Gives every request an id; a failure is logged and sent as request.failed too."""

    route = ""

    def initial(self, request: Request, *args, **kwargs) -> None:
        self.request_id = str(uuid.uuid4())
        super().initial(request, *args, **kwargs)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        request_id = getattr(self, "request_id", None)
        organization = getattr(getattr(self.request, "user", None), "organization", None)
        if request_id and organization is not None and response.status_code < 500:
            error = response.data.get("error", {}) if isinstance(response.data, dict) else {}
            travtus.record_request(
                organization, request_id=request_id, route=self.route, status_code=response.status_code,
                errors={"type": error.get("type"), "message": error.get("message"), "fields": error.get("fields", {})},
            )  # fmt: skip
            response.data["request_id"] = request_id
            response["X-Request-Id"] = request_id
        return response


class TravtusTaskView(TravtusRequestMixin, APIView):
    """Travtus "Create Task" (POST) and its update (PATCH)."""

    @property
    def route(self) -> str:
        return f"{self.request.method} /task/"

    @extend_schema(
        request=TravtusCreateSerializer,
        responses=TravtusResponseSerializer,
        examples=[examples.TRAVTUS_CREATE_REQUEST, examples.TRAVTUS_CREATE_RESPONSE],
    )
    @idempotent
    def post(self, request: Request) -> Response:
        data = validated(TravtusCreateSerializer, request)
        task = travtus.travtus_create(organization=request.user.organization, data=data, request_id=self.request_id)
        return Response({"request_id": self.request_id, "identifier": str(task.identifier)},
                        headers={"X-Request-Id": self.request_id})  # fmt: skip

    @extend_schema(
        request=TravtusUpdateSerializer, responses=TravtusResponseSerializer, examples=[examples.TRAVTUS_UPDATE_REQUEST]
    )
    @idempotent
    def patch(self, request: Request) -> Response:
        data = validated(TravtusUpdateSerializer, request)
        travtus.travtus_update(organization=request.user.organization, data=data, request_id=self.request_id)
        return Response({"request_id": self.request_id}, headers={"X-Request-Id": self.request_id})


class TaskRequestView(APIView):
    """How a Travtus-style request ended."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, request_id: uuid.UUID) -> Response:
        entry = (
            TaskRequest.objects.filter(organization=request.user.organization, request_id=request_id)
            .select_related("task")
            .first()
        )
        if entry is None:
            raise Http404
        return Response(
            {
                "request_id": str(entry.request_id),
                "route": entry.route,
                "outcome": entry.outcome,
                "status_code": entry.status_code,
                "identifier": str(entry.task.identifier) if entry.task else None,
                "errors": entry.errors,
                "created_at": entry.created_at,
            }
        )
