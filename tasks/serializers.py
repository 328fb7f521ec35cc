"""Shapes of the task API: field validation only; the services decide what happens."""

import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.functional import cached_property
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from taskhub.phones import normalize_phone

from .attachments import signed_url
from .models import Attachment, Importance, Person, Rating, StatusType, Task, TaskAddress, TaskStatus, member_ids
from .parsing import DateTimeInputError, parse_datetime_in_zone

MAX_NESTED = 100

# Per thread: the input shape class -> its fields, built once and lent to each new instance.
_lent = threading.local()


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know, naming them: nothing a client sends is dropped silently.

    DRF deep-copies every declared field, nested shapes included, for each instance: for the
    upsert body that was most of the cost of validating it. A top-level input shape instead
    builds its fields once per thread and lends them to each new instance, reparenting them to
    it (so `context` and `root` are the new instance's). One thread validates one request at a
    time, and a request's shape is done with before the next of its class is made. A nested
    shape keeps DRF's behaviour: it is built once, with the fields of the shape that holds it.
    """

    @cached_property
    def fields(self):
        if getattr(self, "parent", None) is not None:
            return super().fields
        shapes = _lent.__dict__.setdefault("shapes", {})
        fields = shapes.get(type(self))
        if fields is None:
            fields = shapes[type(self)] = super().fields
            return fields
        fields.serializer = self
        for field in fields.values():
            field.parent = self  # name, source and label were set by the first bind and stay
        return fields

    def to_internal_value(self, data: Any) -> dict:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown})
        return super().to_internal_value(data)


@extend_schema_field(OpenApiTypes.DATETIME)
class ZonedDateTimeField(serializers.Field):
    """ISO 8601 (with 'T' or a space); naive values are in the organization's time zone."""

    default_error_messages = {"invalid": "{message}"}

    def to_internal_value(self, data: Any):
        try:
            return parse_datetime_in_zone(data, self.context["organization"].tz)
        except DateTimeInputError as exc:
            self.fail("invalid", message=str(exc))

    def to_representation(self, value):
        return value.isoformat() if value else None


class PhoneField(serializers.CharField):
    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        try:
            return normalize_phone(super().to_internal_value(data))
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc


class RefField(serializers.CharField):
    """A reference to one of our rows by its numeric id or UUID identifier (strings or numbers)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 64)
        super().__init__(**kwargs)


def text(max_length: int = 255, **kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=max_length, allow_blank=True, required=False, **kwargs)


class LocationSerializer(StrictSerializer):
    lat = serializers.FloatField(min_value=-90, max_value=90)
    lng = serializers.FloatField(min_value=-180, max_value=180)


class AddressInSerializer(StrictSerializer):
    title = text(200)
    address_line_1 = text()
    address_line_2 = text()
    city = text(128)
    state = text(128)
    country = text(128)
    zipcode = text(32)
    exact_location = LocationSerializer(required=False, allow_null=True)


class NotificationsSerializer(StrictSerializer):
    sms = serializers.BooleanField(required=False)
    email = serializers.BooleanField(required=False)


class EntityInSerializer(StrictSerializer):
    """An inline crew member, created or updated by its external_id and assigned."""

    external_id = serializers.CharField(max_length=255)
    name = text(256)
    first_name = text(128)
    last_name = text(128)
    email = serializers.EmailField(required=False, allow_blank=True)
    phone = PhoneField(required=False)
    mobile_number = PhoneField(required=False)
    color = serializers.RegexField(r"^#[0-9a-fA-F]{6}$", required=False, allow_blank=True)


class ResourceInSerializer(StrictSerializer):
    external_id = serializers.CharField(max_length=255)
    name = text(200)
    type = text(64)
    details = text(5000)


def id_list() -> serializers.ListField:
    return serializers.ListField(child=RefField(), required=False, max_length=MAX_NESTED)


class UpsertSerializer(StrictSerializer):
    """Arrivy's task upsert body; every field optional, only the fields sent are applied."""

    title = text(255)
    details = text(20000)
    start_datetime = ZonedDateTimeField(required=False, allow_null=True)
    end_datetime = ZonedDateTimeField(required=False, allow_null=True)
    enable_time_window_display = serializers.BooleanField(required=False)
    time_window_start = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=10080)
    unscheduled = serializers.BooleanField(required=False)
    customer_first_name = text(128)
    customer_last_name = text(128)
    customer_email = serializers.EmailField(required=False, allow_blank=True)
    customer_company_name = text(200)
    customer_address_line_1 = text()
    customer_address_line_2 = text()
    customer_city = text(128)
    customer_state = text(128)
    customer_country = text(128)
    customer_zipcode = text(32)
    customer_exact_location = LocationSerializer(required=False, allow_null=True)
    customer_mobile_number = PhoneField(required=False)
    customer_phone = PhoneField(required=False)
    customer_id = RefField(required=False, allow_null=True)
    customer_notes = text(5000)
    additional_addresses = AddressInSerializer(many=True, required=False, max_length=MAX_NESTED)
    entity_ids = id_list()
    resource_ids = id_list()
    entities = EntityInSerializer(many=True, required=False, max_length=MAX_NESTED)
    resources = ResourceInSerializer(many=True, required=False, max_length=MAX_NESTED)
    extra_fields = serializers.DictField(required=False)
    notifications = NotificationsSerializer(required=False)
    template = RefField(required=False, allow_blank=True, max_length=100)
    group_id = RefField(required=False, allow_null=True)
    external_url = serializers.URLField(required=False, allow_blank=True, max_length=1000)
    do_not_send_webhook_notification = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict) -> dict:
        start, end = attrs.get("start_datetime"), attrs.get("end_datetime")
        if start and end and end < start:
            raise serializers.ValidationError({"end_datetime": ["Must not be before start_datetime."]})
        return attrs


class StatusInSerializer(StrictSerializer):
    """Arrivy's status report: POST /express/tasks/{external_id}/status/new."""

    type = serializers.CharField(max_length=32)
    time = ZonedDateTimeField(required=False)
    reporter_name = text(200)
    reporter_id = RefField(required=False, allow_null=True)
    source = serializers.ChoiceField(choices=TaskStatus.Source.choices, required=False)
    extra_fields = serializers.DictField(required=False)
    notes = text(5000)
    visible_to_customer = serializers.BooleanField(required=False)

    def validate_type(self, value: str) -> StatusType:
        try:
            return StatusType.parse(value)
        except ValueError:
            choices = ", ".join(StatusType.values)
            raise serializers.ValidationError(f"'{value}' is not a status type; use one of {choices}.") from None

    def validate_extra_fields(self, value: dict) -> dict:
        if "visible_to_customer" in value and not isinstance(value["visible_to_customer"], bool):
            raise serializers.ValidationError({"visible_to_customer": ["Must be true or false."]})
        return value


# --- Read shapes ----------------------------------------------------------------------------


class BuiltOnce:
    """A read shape whose fields are built once per class instead of on every instance.

    DRF builds a ModelSerializer's fields from the model, and deep-copies them, for each
    instance: for a nested shape that costs more than the rendering itself. These shapes depend
    only on the object they render (no context, no request), so one bound prototype per class
    renders every instance. The declared fields stay as they are for validation and the schema.
    """

    def to_representation(self, instance):
        cls = type(self)
        prototype = cls.__dict__.get("_prototype")
        if prototype is None:
            prototype = cls()
            _ = prototype.fields  # built and bound here, once; read-only from then on
            cls._prototype = prototype
        return serializers.Serializer.to_representation(prototype, instance)


class PersonOutSerializer(BuiltOnce, serializers.ModelSerializer):
    class Meta:
        model = Person
        fields = ["id", "identifier", "external_ref", "first_name", "last_name", "company_name", "email", "phone",
                  "mobile_number"]  # fmt: skip


class AddressOutSerializer(BuiltOnce, serializers.ModelSerializer):
    class Meta:
        model = TaskAddress
        fields = ["title", "address_line_1", "address_line_2", "city", "state", "country", "zipcode", "lat", "lng"]


def tracker_url(task: Task) -> str:
    return f"{settings.PUBLIC_BASE_URL}/t/{task.url_safe_id}"


class RatingOutSerializer(BuiltOnce, serializers.ModelSerializer):
    class Meta:
        model = Rating
        fields = ["score", "text", "created_at"]


class TaskOutSerializer(BuiltOnce, serializers.ModelSerializer):
    """The task as integrators read it, on every route."""

    url_safe_id = serializers.CharField(read_only=True)
    tracker_url = serializers.SerializerMethodField()
    coarse_status = serializers.CharField(read_only=True, help_text="Travtus status: created|in_progress|...")
    customer = PersonOutSerializer(read_only=True, allow_null=True)
    addresses = AddressOutSerializer(many=True, read_only=True)
    entity_ids = serializers.SerializerMethodField()
    resource_ids = serializers.SerializerMethodField()
    group_id = serializers.IntegerField(read_only=True, allow_null=True)
    unit_id = serializers.IntegerField(read_only=True, allow_null=True)
    notifications = serializers.SerializerMethodField()
    rating = serializers.SerializerMethodField(help_text="The customer's rating from the tracker page, or null.")

    class Meta:
        model = Task
        fields = [
            "id", "identifier", "external_id", "url_safe_id", "tracker_url", "title", "details", "notes",
            "importance", "status", "coarse_status", "version", "start_datetime", "end_datetime",
            "enable_time_window_display", "time_window_start", "unscheduled", "due_datetime", "reminder_datetime",
            "completed_datetime", "customer", "addresses", "entity_ids", "resource_ids", "group_id", "unit_id",
            "notifications", "template", "extra_fields", "external_url", "relevant_conversation", "created_at",
            "updated_at", "deleted_at", "eta", "rating",
        ]  # fmt: skip

    def get_tracker_url(self, task: Task) -> str:
        return tracker_url(task)

    def get_entity_ids(self, task: Task) -> list[int]:
        return sorted(member_ids(task, "assignees"))

    def get_resource_ids(self, task: Task) -> list[int]:
        return sorted(member_ids(task, "resources"))

    def get_notifications(self, task: Task) -> dict[str, bool]:
        return {"sms": task.notify_sms, "email": task.notify_email}

    @extend_schema_field(RatingOutSerializer(allow_null=True))
    def get_rating(self, task: Task) -> dict[str, Any] | None:
        rating = getattr(task, "rating", None)  # a missing one-to-one raises an AttributeError subclass
        return RatingOutSerializer(rating).data if rating is not None else None


class StatusOutSerializer(BuiltOnce, serializers.ModelSerializer):
    class Meta:
        model = TaskStatus
        fields = ["id", "type", "kind", "time", "reporter_id", "reporter_name", "source", "notes",
                  "visible_to_customer", "extra_fields", "created_at"]  # fmt: skip


# --- Attachments ---


class AttachmentInSerializer(StrictSerializer):
    file = serializers.FileField(required=False, allow_empty_file=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    visible_to_customer = serializers.BooleanField(required=False, default=False)


class AttachmentOutSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text="Signed link to the file, valid ATTACHMENT_LINK_MAX_AGE.")
    status_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Attachment
        fields = ["id", "filename", "content_type", "size", "note", "visible_to_customer", "status_id", "url",
                  "created_at"]  # fmt: skip

    def get_url(self, attachment: Attachment) -> str | None:
        return signed_url(attachment) if attachment.file else None


# --- Travtus ------------------------------------------------------------------------------


class PersonSpecSerializer(StrictSerializer):
    identifier = serializers.CharField(max_length=64, required=False, allow_blank=True)
    external_ref = serializers.CharField(max_length=255, required=False, allow_blank=True)
    email_address = serializers.EmailField(required=False, allow_blank=True)
    first_name = text(128)
    last_name = text(128)
    phone_number = PhoneField(required=False)


class TravtusCreateSerializer(StrictSerializer):
    """Travtus "Create Task" body."""

    group_id = RefField(required=False)
    group_external_ref = serializers.CharField(max_length=255, required=False)
    external_ref = serializers.CharField(max_length=255, required=False, allow_null=True)
    due_datetime = ZonedDateTimeField(required=False, allow_null=True)
    reminder_datetime = ZonedDateTimeField(required=False, allow_null=True)
    importance = serializers.ChoiceField(choices=Importance.choices, required=False)
    relevant_conversation = text(20000)
    creator = PersonSpecSerializer(required=False)
    assignee = PersonSpecSerializer(required=False)
    resident = PersonSpecSerializer(required=False)
    unit_id = RefField(required=False)
    unit_external_ref = serializers.CharField(max_length=255, required=False)
    notes = text(20000)
    title = text(255)
    description = text(20000)

    def validate(self, attrs: dict) -> dict:
        if "group_id" in attrs and "group_external_ref" in attrs:
            message = "Give group_id or group_external_ref, not both."
            raise serializers.ValidationError({"group_id": [message], "group_external_ref": [message]})
        if "group_id" not in attrs and "group_external_ref" not in attrs:
            raise serializers.ValidationError({"group_id": ["Give group_id or group_external_ref."]})
        if "unit_id" in attrs and "unit_external_ref" in attrs:
            raise serializers.ValidationError({"unit_id": ["Give unit_id or unit_external_ref, not both."]})
        return attrs


class TravtusUpdateSerializer(StrictSerializer):
    """PATCH /task/: update a task found by identifier or external_ref."""

    identifier = serializers.UUIDField(required=False)
    external_ref = serializers.CharField(max_length=255, required=False)
    status = serializers.ChoiceField(choices=["created", "in_progress", "completed", "deleted"], required=False)
    due_datetime = ZonedDateTimeField(required=False, allow_null=True)
    reminder_datetime = ZonedDateTimeField(required=False, allow_null=True)
    completed_datetime = ZonedDateTimeField(required=False, allow_null=True)
    importance = serializers.ChoiceField(choices=Importance.choices, required=False)
    assignee_id = RefField(required=False, allow_null=True)
    resident_id = RefField(required=False, allow_null=True)
    notes = text(20000)
    title = text(255)
    description = text(20000)

    def validate(self, attrs: dict) -> dict:
        if ("identifier" in attrs) == ("external_ref" in attrs):
            raise serializers.ValidationError({"identifier": ["Give identifier or external_ref (exactly one)."]})
        return attrs


class TravtusResponseSerializer(serializers.Serializer):
    request_id = serializers.UUIDField()
    identifier = serializers.UUIDField(required=False)
