"""What keeps the public tracker page safe and readable: headers, brand colours, posting limits."""

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.csp import CSP, build_policy

from taskhub.models import Organization
from taskhub.ratelimit import hit

# --- Colours: WCAG 2.1 contrast ---------------------------------------------------------------

WHITE, INK = "#ffffff", "#111827"
AA_TEXT = 4.5


def luminance(hex_colour: str) -> float:
    """Relative luminance (WCAG 2.1) of '#rrggbb'."""
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def readable_on(background: str) -> str:
    """White or ink, whichever reads better on `background` (one of them always reaches 4.5:1)."""
    return WHITE if contrast(background, WHITE) >= contrast(background, INK) else INK


def darkened(hex_colour: str, factor: float) -> str:
    return "#" + "".join(f"{round(int(hex_colour[i : i + 2], 16) * factor):02x}" for i in (1, 3, 5))


def accent_on_white(brand: str) -> str:
    """The brand colour, darkened just enough to be read as text and borders on white."""
    factor = 1.0
    colour = brand.lower()
    while contrast(colour, WHITE) < AA_TEXT and factor > 0:
        factor = round(factor - 0.05, 2)
        colour = darkened(brand, factor)
    return colour


def theme_css(brand: str) -> str:
    brand = brand.lower()
    accent = accent_on_white(brand)
    return (
        f":root{{--brand:{brand};--on-brand:{readable_on(brand)};"
        f"--accent:{accent};--on-accent:{readable_on(accent)}}}\n"
    )


# --- Headers ---------------------------------------------------------------------------------


def origin_of(url: str) -> str | None:
    """'https://{s}.tile.example.org/{z}/..' -> 'https://*.tile.example.org'."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return None
    host = parts.netloc.replace("{s}", "*")
    return f"{parts.scheme}://{host}"


def frame_ancestors(organization: Organization | None) -> list[str]:
    allowed = organization.tracker_frame_ancestors.split() if organization is not None else []
    return allowed or [CSP.NONE]


def content_security_policy(organization: Organization | None) -> str:
    images = [CSP.SELF, "data:"]
    for url in (settings.PUBLIC_BASE_URL, settings.TRACKER_TILE_URL):  # signed file links, map tiles
        origin = origin_of(url)
        if origin and origin not in images:
            images.append(origin)
    return build_policy(
        {
            "default-src": [CSP.SELF],
            "script-src": [CSP.SELF],
            "style-src": [CSP.SELF],
            "img-src": images,
            "connect-src": [CSP.SELF],
            "font-src": [CSP.SELF],
            "object-src": [CSP.NONE],
            "base-uri": [CSP.NONE],
            "form-action": [CSP.SELF],
            "frame-ancestors": frame_ancestors(organization),
        }
    )


def protect(
    response: HttpResponse, organization: Organization | None = None, *, max_age: int = 0, has_forms: bool = False
) -> HttpResponse:
    """Headers of every tracker response; `organization` decides who may frame the page."""
    response["Content-Security-Policy"] = content_security_policy(organization)
    # The token in the address must never reach another site. A page with forms still says
    # "same-origin", not "no-referrer": under no-referrer browsers post forms with `Origin: null`,
    # which Django's CSRF check rightly refuses.
    response["Referrer-Policy"] = "same-origin" if has_forms else "no-referrer"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = f"private, max-age={max_age}"
    if frame_ancestors(organization) == [CSP.NONE]:
        response["X-Frame-Options"] = "DENY"
    else:
        # X-Frame-Options cannot name several origins; CSP frame-ancestors decides alone.
        response.xframe_options_exempt = True
    return response


# --- Posting limits ----------------------------------------------------------------------------


def post_limit_wait(request: HttpRequest, token: str) -> int | None:
    """Count one post from this link and this address; seconds to wait when either is over its limit."""
    period = settings.TRACKER_POST_WINDOW_SECONDS
    ip = request.META.get("REMOTE_ADDR", "")
    windows = [
        hit(f"tracker:token:{token}", settings.TRACKER_POST_LIMIT_PER_TOKEN, period),
        hit(f"tracker:ip:{ip}", settings.TRACKER_POST_LIMIT_PER_IP, period),
    ]
    refused = [window for window in windows if window is not None and not window.allowed]
    return max(window.seconds_to_reset() for window in refused) if refused else None
