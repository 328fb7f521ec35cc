"""Bearer-token authentication for the API: the caller is an organization's credential."""

from dataclasses import dataclass

from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from .models import TOKEN_PREFIX, AccessToken, Organization


@dataclass(frozen=True)
class ApiPrincipal:
    """Who is calling: an organization, through one access token."""

    organization: Organization
    token: AccessToken
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return f"token:{self.token.pk}"


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1").strip()
        if not header:
            return None  # IsOrganizationClient then answers missing_authorization
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
            raise exceptions.AuthenticationFailed(code="invalid_authorization")
        token = AccessToken.objects.by_raw(raw)
        if token is None or token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(code="invalid_authorization")
        if token.is_expired:
            raise exceptions.AuthenticationFailed(code="expired_token")
        now = timezone.now()
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return ApiPrincipal(organization=token.organization, token=token), token

    def authenticate_header(self, request) -> str:
        return self.keyword


class IsOrganizationClient(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, ApiPrincipal)
