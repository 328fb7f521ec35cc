"""A test-only API with an effect (creating a Group), to exercise the platform pieces on their own."""

import threading

from django.urls import include, path
from rest_framework import parsers
from rest_framework.response import Response
from rest_framework.views import APIView

from taskhub.api import MeView
from taskhub.errors import ValidationFailed
from taskhub.idempotency import idempotent
from taskhub.oauth import TokenView
from tasks.models import Group

ENTERED = threading.Event()  # set when a request asking to "hold" is inside the view
RELEASE = threading.Event()  # lets it finish
FAILURES_LEFT = {"count": 0}  # that many requests crash with a 500 first


class GroupCreateView(APIView):
    @idempotent
    def post(self, request):
        name = request.data.get("name")
        if not name:
            raise ValidationFailed("A name is required.", {"name": ["This field is required."]})
        group = Group.objects.create(organization=request.user.organization, name=name)
        if request.data.get("hold"):
            ENTERED.set()
            RELEASE.wait(timeout=10)
        if FAILURES_LEFT["count"] > 0:
            FAILURES_LEFT["count"] -= 1
            raise RuntimeError("simulated crash after the write")
        body = {"id": group.pk, "identifier": str(group.identifier), "name": group.name}
        return Response(body, status=201, headers={"Location": f"/api/groups/{group.identifier}"})


class AttachmentView(APIView):
    parser_classes = [parsers.MultiPartParser]

    def post(self, request, pk: int):
        upload = request.data["file"]
        return Response({"size": upload.size}, status=201)


api_patterns = [
    path("me", MeView.as_view()),
    path("oauth2/token", TokenView.as_view()),
    path("groups", GroupCreateView.as_view()),
    path("groups/<int:pk>/attachments", AttachmentView.as_view()),
]
urlpatterns = [path("api/", include(api_patterns))]
