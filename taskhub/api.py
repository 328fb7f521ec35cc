"""Platform API views: who am I."""

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class MeView(APIView):
    """The caller's organization and token expiry, to test credentials."""

    @extend_schema(
        responses=inline_serializer(
            "Me",
            {
                "organization": inline_serializer(
                    "MeOrganization",
                    {
                        "slug": serializers.CharField(),
                        "name": serializers.CharField(),
                        "timezone": serializers.CharField(),
                    },
                ),
                "token": inline_serializer(
                    "MeToken",
                    {"prefix": serializers.CharField(), "expires_at": serializers.DateTimeField(allow_null=True)},
                ),
            },
        )
    )
    def get(self, request: Request) -> Response:
        org, token = request.user.organization, request.auth
        return Response(
            {
                "organization": {"slug": org.slug, "name": org.name, "timezone": org.timezone},
                "token": {"prefix": token.prefix, "expires_at": token.expires_at},
            }
        )
