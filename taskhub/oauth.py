"""OAuth2 client-credentials token endpoint (RFC 6749 §4.4).

`POST /api/oauth2/token`, form-encoded, with the client's credentials either in the body
(`client_id`, `client_secret`) or as HTTP Basic (§2.3.1). This one endpoint answers errors in
the OAuth2 shape of §5.2, `{"error": "<code>", "error_description": "..."}`, because OAuth2
client libraries expect exactly that; every other route uses TaskHub's error envelope.

Failed client authentications are counted per client_id and per client IP (settings
`API_TOKEN_FAILURE_LIMIT`, default 10/minute); past the limit the endpoint answers 429 until
the window ends, so secrets cannot be guessed at speed.
"""

import base64
import binascii
import time
from urllib.parse import unquote_plus

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import exceptions, parsers, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import ratelimit
from .models import AccessToken, ApiClient

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
BASIC_CHALLENGE = 'Basic realm="TaskHub API"'


class OAuthError(Exception):
    """An RFC 6749 §5.2 error response."""

    def __init__(self, code: str, description: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(description)
        self.code, self.description, self.status, self.headers = code, description, status, headers or {}

    def response(self) -> Response:
        body = {"error": self.code, "error_description": self.description}
        return Response(body, status=self.status, headers={**NO_STORE, **self.headers})


def invalid_client(description: str = "Client authentication failed.") -> OAuthError:
    return OAuthError("invalid_client", description, 401, {"WWW-Authenticate": BASIC_CHALLENGE})


def client_credentials(request: Request) -> tuple[str, str]:
    """(client_id, client_secret) from HTTP Basic or the form body; only one method may be used."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    in_body = "client_id" in request.data or "client_secret" in request.data
    if not header:
        return str(request.data.get("client_id", "")), str(request.data.get("client_secret", ""))
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise invalid_client("Use HTTP Basic or client_id/client_secret in the body to authenticate the client.")
    if in_body:
        raise OAuthError("invalid_request", "Send client credentials either as HTTP Basic or in the body, not both.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_client("The HTTP Basic credentials are not valid base64 of 'client_id:client_secret'.") from None
    client_id, _, secret = decoded.partition(":")
    return unquote_plus(client_id), unquote_plus(secret)


class FailureLimit:
    """Counts failed client authentications per client_id and per IP."""

    def __init__(self, request: Request, client_id: str):
        self.limit, self.period = ratelimit.parse_rate(settings.API_TOKEN_FAILURE_LIMIT)
        ip = request.META.get("REMOTE_ADDR", "")
        self.keys = [f"oauth-fail:ip:{ip}"] + ([f"oauth-fail:client:{client_id[:100]}"] if client_id else [])

    def check(self) -> None:
        if any(ratelimit.peek(key, self.period) >= self.limit for key in self.keys):
            wait = self.period - int(time.time()) % self.period
            raise OAuthError(
                "too_many_requests",
                f"Too many failed client authentications; retry in {wait} seconds.",
                429,
                {"Retry-After": str(wait)},
            )

    def record_failure(self) -> None:
        for key in self.keys:
            ratelimit.hit(key, self.limit, self.period)


def authenticate_client(request: Request) -> ApiClient:
    client_id, secret = client_credentials(request)
    if not client_id or not secret:
        raise invalid_client("Client credentials are missing: send client_id and client_secret.")
    failures = FailureLimit(request, client_id)
    failures.check()
    client = ApiClient.objects.select_related("organization").filter(client_id=client_id).first()
    if client is None or client.revoked_at is not None or not client.check_secret(secret):
        failures.record_failure()
        raise invalid_client("Unknown client, wrong secret, or the client has been revoked.")
    return client


TOKEN_RESPONSE = inline_serializer(
    "OAuth2Token",
    {
        "access_token": serializers.CharField(),
        "expires_in": serializers.IntegerField(),
        "token_type": serializers.ChoiceField(choices=["Bearer"]),
    },
)
TOKEN_ERROR = inline_serializer(
    "OAuth2Error",
    {
        "error": serializers.ChoiceField(
            choices=["invalid_request", "invalid_client", "unsupported_grant_type", "too_many_requests"]
        ),
        "error_description": serializers.CharField(),
    },
)
TOKEN_REQUEST = inline_serializer(
    "OAuth2TokenGrant",
    {
        "grant_type": serializers.ChoiceField(choices=["client_credentials"]),
        "client_id": serializers.CharField(required=False, help_text="Or send the client as HTTP Basic."),
        "client_secret": serializers.CharField(required=False),
    },
)


class TokenView(APIView):
    """Exchange an API client's credentials for a bearer access token."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_classes: list = []  # failed authentications have their own limit, see FailureLimit
    parser_classes = [parsers.FormParser]

    @extend_schema(
        operation_id="oauth2_token",
        tags=["auth"],
        auth=[],
        summary="Get an access token (OAuth2 client credentials)",
        description=(
            "Form-encoded `grant_type=client_credentials` with `client_id` and `client_secret` in the body "
            "or as HTTP Basic. Errors on this endpoint alone use the OAuth2 shape of RFC 6749 §5.2: "
            '`{"error": "invalid_client", "error_description": "..."}`.'
        ),
        request={"application/x-www-form-urlencoded": TOKEN_REQUEST},
        responses={
            200: OpenApiResponse(
                TOKEN_RESPONSE,
                examples=[
                    OpenApiExample("Token", {"access_token": "thk_...", "expires_in": 3600, "token_type": "Bearer"})
                ],
            ),
            400: OpenApiResponse(TOKEN_ERROR, description="invalid_request or unsupported_grant_type"),
            401: OpenApiResponse(TOKEN_ERROR, description="invalid_client"),
            429: OpenApiResponse(TOKEN_ERROR, description="too_many_requests: too many failed authentications"),
        },
    )
    def post(self, request: Request) -> Response:
        try:
            grant_type = request.data.get("grant_type")
            if not grant_type:
                raise OAuthError("invalid_request", "The grant_type parameter is missing.")
            if grant_type != "client_credentials":
                raise OAuthError("unsupported_grant_type", "Only grant_type=client_credentials is supported.")
            client = authenticate_client(request)
        except OAuthError as error:
            return error.response()
        ttl = settings.API_TOKEN_TTL_SECONDS
        _, raw = AccessToken.issue(client.organization, ttl=ttl, name="oauth2", client=client)
        return Response({"access_token": raw, "expires_in": ttl, "token_type": "Bearer"}, headers=NO_STORE)

    def handle_exception(self, exc: Exception) -> Response:
        """Parser and method errors in the OAuth2 shape too."""
        if isinstance(exc, exceptions.MethodNotAllowed):
            error = OAuthError("invalid_request", "Use POST.", 405, {"Allow": "POST"})
        elif isinstance(exc, exceptions.APIException):
            error = OAuthError("invalid_request", "Send a form-encoded (application/x-www-form-urlencoded) body.")
        else:
            return super().handle_exception(exc)
        return error.response()
