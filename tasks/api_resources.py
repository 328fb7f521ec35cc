"""TaskHub's own resources under /api/: tasks by identifier, people, groups, units, resources."""

import django_filters
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from taskhub.idempotency import idempotent

from . import arrivy
from .api import org_tasks, status_arguments, validated
from .attachments import attachment_create
from .models import Attachment, Group, Importance, Person, Resource, StatusType, Task, TaskStatus, Unit
from .parsing import DateTimeInputError, parse_datetime_in_zone
from .serializers import (
    AttachmentInSerializer,
    AttachmentOutSerializer,
    PhoneField,
    StatusInSerializer,
    StatusOutSerializer,
    TaskOutSerializer,
    UpsertSerializer,
)
from .services import task_delete, task_report_status, task_update

EXPANDABLE = ("customer", "addresses")


class KeysetPagination(CursorPagination):
    """Keyset pagination: stable under inserts, no COUNT(*)."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 500


class TaskResourceSerializer(TaskOutSerializer):
    """The task; `customer` and `addresses` only when asked for with ?expand=."""

    customer_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta(TaskOutSerializer.Meta):
        fields = [*TaskOutSerializer.Meta.fields, "customer_id"]

    # Its fields depend on the request (?expand=): rendered with each instance's own fields.
    to_representation = serializers.ModelSerializer.to_representation

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        expand = set(request.query_params.get("expand", "").split(",")) if request else set()
        for name in EXPANDABLE:
            if name not in expand:
                self.fields.pop(name)


class BoundedIsoDateTimeField(IsoDateTimeField):
    """ISO 8601 through the shared parser: in UTC and within its years, so PostgreSQL takes every value.

    An offset such as +22:10 is valid ISO 8601 but out of PostgreSQL's range: a 500 before this.
    """

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_datetime_in_zone(value, timezone.get_current_timezone())
        except DateTimeInputError as exc:
            # As a parameter: django-filter %-formats the message, and the reason quotes the input.
            raise DjangoValidationError("%(reason)s", code="invalid", params={"reason": str(exc)}) from None


class BoundedIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedIsoDateTimeField


class TaskFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=StatusType.choices)
    importance = django_filters.MultipleChoiceFilter(choices=Importance.choices)
    group = django_filters.UUIDFilter(field_name="group__identifier")
    unit = django_filters.UUIDFilter(field_name="unit__identifier")
    assignee = django_filters.UUIDFilter(field_name="assignees__identifier", distinct=True)
    customer = django_filters.UUIDFilter(field_name="customer__identifier")
    start_after = BoundedIsoDateTimeFilter(field_name="start_datetime", lookup_expr="gte")
    start_before = BoundedIsoDateTimeFilter(field_name="start_datetime", lookup_expr="lt")
    due_after = BoundedIsoDateTimeFilter(field_name="due_datetime", lookup_expr="gte")
    due_before = BoundedIsoDateTimeFilter(field_name="due_datetime", lookup_expr="lt")
    updated_since = BoundedIsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    external_id = django_filters.CharFilter()

    class Meta:
        model = Task
        fields: list[str] = []


@extend_schema(parameters=[OpenApiParameter("expand", str, description="Comma-separated: customer,addresses")])
class TaskViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Tasks by TaskHub identifier: list with filters, read, partial update, soft delete, journal."""

    serializer_class = TaskResourceSerializer
    pagination_class = KeysetPagination
    filterset_class = TaskFilter
    lookup_field = "identifier"
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    queryset = Task.objects.none()  # the model, for the schema; rows come from get_queryset

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        return org_tasks(self.request)

    @extend_schema(request=UpsertSerializer, responses=TaskResourceSerializer)
    @idempotent
    def partial_update(self, request: Request, identifier=None) -> Response:
        task = self.get_object()
        data = validated(UpsertSerializer, request)
        with transaction.atomic():
            changes = arrivy.to_changes(request.user.organization, data, task)
            task = task_update(task=task, changes=changes).task
        return Response(self.get_serializer(task).data)

    def perform_destroy(self, instance: Task) -> None:
        task_delete(task=instance)

    @extend_schema(methods=["GET"], responses=StatusOutSerializer(many=True))
    @extend_schema(methods=["POST"], request=StatusInSerializer, responses={201: StatusOutSerializer})
    @action(detail=True, methods=["get", "post"], pagination_class=KeysetPagination, filterset_class=None)
    @idempotent
    def statuses(self, request: Request, identifier=None) -> Response:
        task = self.get_object()
        if request.method == "POST":
            entry = task_report_status(task=task, **status_arguments(request, validated(StatusInSerializer, request)))
            return Response(StatusOutSerializer(entry).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(TaskStatus.objects.filter(task=task))
        return self.get_paginated_response(StatusOutSerializer(page, many=True).data)

    @extend_schema(methods=["GET"], responses=AttachmentOutSerializer(many=True))
    @extend_schema(methods=["POST"], request={"multipart/form-data": AttachmentInSerializer},
                   responses={201: AttachmentOutSerializer})  # fmt: skip
    @action(detail=True, methods=["get", "post"], parser_classes=[MultiPartParser], filterset_class=None)
    @idempotent
    def attachments(self, request: Request, identifier=None) -> Response:
        """Files, notes and pictures of the task; referenced by id from status reports' extra_fields.files."""
        task = self.get_object()
        if request.method == "POST":
            data = validated(AttachmentInSerializer, request)
            attachment = attachment_create(
                task=task, upload=data.get("file"), note=data.get("note", ""),
                visible_to_customer=data["visible_to_customer"],
            )  # fmt: skip
            return Response(AttachmentOutSerializer(attachment).data, status=status.HTTP_201_CREATED)
        page = self.paginate_queryset(Attachment.objects.filter(task=task))
        return self.get_paginated_response(AttachmentOutSerializer(page, many=True).data)


# --- Reference data ---------------------------------------------------------------------------


class OrgScopedViewSet(viewsets.ModelViewSet):
    """CRUD on one organization's rows, by UUID identifier; ?external_ref= finds one by reference."""

    lookup_field = "identifier"
    lookup_value_regex = "[0-9a-fA-F-]{36}"
    pagination_class = KeysetPagination
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    model: type = None
    external_key = "external_ref"
    create = idempotent(mixins.CreateModelMixin.create)
    partial_update = idempotent(mixins.UpdateModelMixin.partial_update)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()
        rows = self.model.objects.filter(organization=self.request.user.organization)
        if ref := self.request.query_params.get(self.external_key):
            rows = rows.filter(**{self.external_key: ref})
        return rows

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "organization": self.request.user.organization}

    def perform_create(self, serializer) -> None:
        serializer.save(organization=self.request.user.organization)


class OrgModelSerializer(serializers.ModelSerializer):
    """Unique external keys are checked per organization, as a 400 naming the field."""

    external_key = "external_ref"

    def validate(self, attrs: dict) -> dict:
        key = self.external_key
        if attrs.get(key):
            rows = self.Meta.model.objects.filter(organization=self.context["organization"], **{key: attrs[key]})
            if self.instance is not None:
                rows = rows.exclude(pk=self.instance.pk)
            if rows.exists():
                raise serializers.ValidationError({key: ["Already used by another row of this organization."]})
        return attrs


class GroupSerializer(OrgModelSerializer):
    class Meta:
        model = Group
        fields = ["id", "identifier", "name", "external_ref"]


class UnitSerializer(OrgModelSerializer):
    group = serializers.SlugRelatedField(slug_field="identifier", queryset=Group.objects.all())

    class Meta:
        model = Unit
        fields = ["id", "identifier", "group", "unit_number", "external_ref", "address_line_1", "address_line_2",
                  "city", "state", "country", "zipcode", "bedrooms", "bathrooms", "sqft"]  # fmt: skip

    def validate_group(self, group: Group) -> Group:
        if group.organization_id != self.context["organization"].pk:
            raise serializers.ValidationError("No such group in this organization.")
        return group


class PersonSerializer(OrgModelSerializer):
    phone = PhoneField(required=False)
    mobile_number = PhoneField(required=False)

    class Meta:
        model = Person
        fields = ["id", "identifier", "external_ref", "first_name", "last_name", "company_name", "email", "phone",
                  "mobile_number", "notes", "is_customer", "is_crew", "is_staff_member", "color"]  # fmt: skip


class ResourceSerializer(OrgModelSerializer):
    external_key = "external_id"

    class Meta:
        model = Resource
        fields = ["id", "identifier", "external_id", "name", "type", "details"]


class GroupViewSet(OrgScopedViewSet):
    model, serializer_class = Group, GroupSerializer


class UnitViewSet(OrgScopedViewSet):
    model, serializer_class = Unit, UnitSerializer


class ResourceViewSet(OrgScopedViewSet):
    model, serializer_class, external_key = Resource, ResourceSerializer, "external_id"


class PersonViewSet(OrgScopedViewSet):
    model, serializer_class = Person, PersonSerializer

    @extend_schema(
        parameters=[OpenApiParameter(name, str) for name in ("email", "phone", "first_name", "last_name")],
        responses=PersonSerializer(many=True),
    )
    @action(detail=False, methods=["get"])
    def find(self, request: Request) -> Response:
        """Exact-match search (case-insensitive email), keyset-paginated, as in Travtus."""
        people = self.get_queryset()
        params = request.query_params
        if params.get("email"):
            people = people.filter(email__iexact=params["email"])
        if params.get("phone"):
            phone = PhoneField().run_validation(params["phone"])
            people = people.filter(phone=phone) | people.filter(mobile_number=phone)
        for name in ("first_name", "last_name"):
            if params.get(name):
                people = people.filter(**{f"{name}__iexact": params[name]})
        page = self.paginate_queryset(people)
        return self.get_paginated_response(PersonSerializer(page, many=True).data)
