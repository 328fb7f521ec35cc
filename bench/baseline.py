"""The baselines TaskHub is measured against: bench-only views that are not part of the product."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework import generics, serializers

from tasks.models import Task


class BareTaskSerializer(serializers.ModelSerializer):
    """A plain ModelSerializer of Task with the fields the create row sends."""

    class Meta:
        model = Task
        fields = ["id", "identifier", "title", "details", "due_datetime", "importance", "group"]


class BareCreateView(generics.CreateAPIView):
    """POST a task with nothing but DRF: same authentication and throttle as the product routes."""

    serializer_class = BareTaskSerializer

    def perform_create(self, serializer: BareTaskSerializer) -> None:
        serializer.save(organization=self.request.user.organization)


def bare_get(request: HttpRequest, token: str) -> JsonResponse:
    """One indexed get by tracker token, rendered as a few fields."""
    task = Task.objects.filter(url_safe_id=token).only("title", "status", "start_datetime").first()
    if task is None:
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse({"title": task.title, "status": task.status, "start": task.start_datetime})


def trivial(request: HttpRequest) -> HttpResponse:
    """The stack's own ceiling: gunicorn, middleware and routing with no work."""
    return HttpResponse(b"ok", content_type="text/plain")
