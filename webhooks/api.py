"""Webhooks API: endpoints, the message log, resend and recover, scoped to the caller's organization."""

import django_filters
from django.db.models import Prefetch, QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from . import services
from .models import Attempt, Delivery, Endpoint, Event
from .serializers import (
    EndpointCreatedSerializer,
    EndpointSerializer,
    MessageDetailSerializer,
    MessageSerializer,
    RecoverSerializer,
    ResentSerializer,
    SecretSerializer,
    TestSentSerializer,
)


class NewestFirst(CursorPagination):
    """Message ids sort by time, so a cursor over them is stable while new messages arrive."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class EndpointViewSet(viewsets.ModelViewSet):
    """Where the organization's events are sent."""

    queryset = Endpoint.objects.none()  # for the schema; requests use get_queryset
    serializer_class = EndpointSerializer
    pagination_class = NewestFirst

    def get_queryset(self) -> QuerySet[Endpoint]:
        return Endpoint.objects.filter(organization=self.request.user.organization)

    def get_serializer_class(self):
        return EndpointCreatedSerializer if self.action == "create" else EndpointSerializer

    def perform_create(self, serializer: EndpointSerializer) -> None:
        serializer.instance = services.endpoint_create(
            organization=self.request.user.organization, **serializer.validated_data
        )

    def perform_update(self, serializer: EndpointSerializer) -> None:
        serializer.instance = services.endpoint_update(endpoint=serializer.instance, **serializer.validated_data)

    @extend_schema(request=None, responses=SecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk=None) -> Response:
        """Issue a new secret; the old one keeps signing alongside it for 24 hours."""
        endpoint = self.get_object()
        secret = services.endpoint_rotate_secret(endpoint=endpoint)
        body = {"secret": secret, "previous_secret_expires_at": endpoint.previous_secret_expires_at}
        return Response(SecretSerializer(body).data)

    @extend_schema(request=None, responses={202: TestSentSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk=None) -> Response:
        """Send a `webhook.test` event to this endpoint only."""
        event = services.endpoint_send_test(endpoint=self.get_object())
        return Response({"message_id": event.id}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=RecoverSerializer, responses={202: ResentSerializer})
    @action(detail=True, methods=["post"])
    def recover(self, request: Request, pk=None) -> Response:
        """Re-send every message to this endpoint that failed since `since` (up to 30 days back)."""
        endpoint = self.get_object()
        serializer = RecoverSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        resent = services.endpoint_recover(endpoint=endpoint, since=serializer.validated_data["since"])
        return Response({"resent": len(resent)}, status=status.HTTP_202_ACCEPTED)


class MessageFilter(django_filters.FilterSet):
    type = django_filters.CharFilter()
    task = django_filters.UUIDFilter(field_name="task__identifier", help_text="The task's identifier.")
    request_id = django_filters.CharFilter()
    status = django_filters.ChoiceFilter(
        field_name="deliveries__status", choices=Delivery.Status.choices, distinct=True, help_text="A delivery status."
    )
    endpoint = django_filters.NumberFilter(field_name="deliveries__endpoint", distinct=True)

    class Meta:
        model = Event
        fields = ["type", "task", "request_id", "status", "endpoint"]


class MessageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The message log: every event sent, its deliveries and (in detail) every attempt."""

    queryset = Event.objects.none()  # for the schema; requests use get_queryset
    pagination_class = NewestFirst
    filterset_class = MessageFilter
    lookup_value_regex = "msg_[0-9A-Z]+"

    def get_queryset(self) -> QuerySet[Event]:
        events = Event.objects.for_org(self.request.user.organization).select_related("task")
        if self.action == "retrieve":
            attempts = Prefetch("attempt_log", queryset=Attempt.objects.order_by("started_at", "id"))
            deliveries = Delivery.objects.order_by("id").prefetch_related(attempts)
        else:
            deliveries = Delivery.objects.order_by("id")
        return events.prefetch_related(Prefetch("deliveries", queryset=deliveries))

    def get_serializer_class(self):
        return MessageDetailSerializer if self.action == "retrieve" else MessageSerializer

    @extend_schema(request=None, responses={202: ResentSerializer})
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, pk=None) -> Response:
        """Send the message again, with the same `webhook-id`, to each of its enabled endpoints."""
        resent = services.message_resend(event=self.get_object())
        return Response({"resent": len(resent)}, status=status.HTTP_202_ACCEPTED)
