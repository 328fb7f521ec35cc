"""Shapes of the webhooks API; field validation only."""

import re

from rest_framework import serializers

from . import http
from .delivery import RESERVED_HEADERS
from .models import EVENT_TYPES, Attempt, Delivery, Endpoint, Event

HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")


class EndpointSerializer(serializers.ModelSerializer):
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), required=False, help_text="Empty: every event type."
    )
    headers = serializers.DictField(child=serializers.CharField(max_length=1000), required=False)
    rate_limit = serializers.IntegerField(min_value=1, max_value=10_000, required=False, allow_null=True)

    class Meta:
        model = Endpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "enabled",
            "headers",
            "rate_limit",
            "disabled_at",
            "disabled_reason",
            "failing_since",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["disabled_at", "disabled_reason", "failing_since", "created_at", "updated_at"]

    def validate_url(self, value: str) -> str:
        try:
            http.check_url(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from exc
        return value

    def validate_event_types(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def validate_headers(self, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not HEADER_NAME.match(name) or name.lower() in RESERVED_HEADERS:
                raise serializers.ValidationError(f"'{name}' cannot be used as a custom header.")
            if "\r" in header_value or "\n" in header_value:
                raise serializers.ValidationError(f"The value of '{name}' contains a line break.")
        return value


class EndpointCreatedSerializer(EndpointSerializer):
    secret = serializers.CharField(read_only=True, help_text="Shown only now: store it to verify signatures.")

    class Meta(EndpointSerializer.Meta):
        fields = [*EndpointSerializer.Meta.fields, "secret"]


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(read_only=True, help_text="The new secret, shown only now.")
    previous_secret_expires_at = serializers.DateTimeField(read_only=True)


class RecoverSerializer(serializers.Serializer):
    since = serializers.DateTimeField(help_text="Re-send failed messages created since then (at most 30 days back).")


class ResentSerializer(serializers.Serializer):
    resent = serializers.IntegerField(help_text="How many deliveries were scheduled again.")


class TestSentSerializer(serializers.Serializer):
    message_id = serializers.CharField()


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = Attempt
        fields = ["started_at", "status_code", "latency_ms", "response_body", "error"]


class DeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = Delivery
        fields = ["id", "endpoint", "status", "attempts", "next_attempt_at", "last_status_code", "last_error"]


class DeliveryDetailSerializer(DeliverySerializer):
    attempt_log = AttemptSerializer(many=True, read_only=True)

    class Meta(DeliverySerializer.Meta):
        fields = [*DeliverySerializer.Meta.fields, "attempt_log"]


class MessageSerializer(serializers.ModelSerializer):
    task = serializers.UUIDField(source="task.identifier", read_only=True, allow_null=True, default=None)
    deliveries = DeliverySerializer(many=True, read_only=True)

    class Meta:
        model = Event
        fields = ["id", "type", "task", "request_id", "created_at", "payload", "deliveries"]


class MessageDetailSerializer(MessageSerializer):
    deliveries = DeliveryDetailSerializer(many=True, read_only=True)
