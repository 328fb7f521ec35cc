"""The customer tracker: the /t/{token} page, its status JSON, and the brand stylesheet they use.

A tracker link is the only credential: an unknown, rotated or deleted token is a 404 that says
nothing more, and a finished task's page is gone (410) TRACKER_EXPIRY_DAYS after it finished.
"""

import functools
import math

from django.conf import settings
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.template.defaultfilters import linebreaksbr
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from taskhub.errors import Conflict, DomainError, envelope
from taskhub.frames import Frames, mark

from . import tracker
from .models import Task
from .services import task_customer_message, task_rate
from .tracker_forms import FORMS, MessageForm, RatingForm
from .tracker_security import origin_of, post_limit_wait, protect, theme_css

PAGE_MAX_AGE = 10
STATUS_MAX_AGE = 5
SENT = {"message": "message", "rating": "rating"}
# Stands for the CSRF token in a remembered page; each response carries its own request's token.
# Not a frame's mark (taskhub/frames.py): it outlives the filling of the page, to each response.
CSRF_MARK = "\x01csrf-token\x01"


def not_found(request: HttpRequest) -> HttpResponse:
    return protect(render(request, "tracker/not_found.html", status=404))


def gone(request: HttpRequest) -> HttpResponse:
    return protect(render(request, "tracker/gone.html", {"days": settings.TRACKER_EXPIRY_DAYS}, status=410))


def live_task(token: str) -> tuple[Task | None, int]:
    """(task, 200), or (None, 404 | 410)."""
    task = tracker.tracker_task(token)
    if task is None or task.is_deleted:
        return None, 404
    if tracker.is_expired(task):
        return None, 410
    return task, 200


@require_http_methods(["GET", "HEAD", "POST"])
def tracker_page(request: HttpRequest, token: str) -> HttpResponse:
    task, code = live_task(token)
    if task is None:
        return not_found(request) if code == 404 else gone(request)
    if request.method != "POST" and SENT.get(request.GET.get("sent", "")) is None:
        response = HttpResponse(plain_page(request, task))
        return protect(response, task.organization, max_age=PAGE_MAX_AGE, has_forms=True)
    forms: dict[str, Form] = {"message": MessageForm(), "rating": RatingForm()}
    status = 200
    if request.method == "POST":
        outcome = handle_post(request, task)
        if isinstance(outcome, HttpResponse):
            return outcome
        form, status = outcome
        forms[form.form_name] = form
    response = HttpResponse(page_html(request, task, forms), status=status)
    return protect(response, task.organization, max_age=PAGE_MAX_AGE if status == 200 else 0, has_forms=True)


def plain_page(request: HttpRequest, task: Task) -> str:
    """The page as most views see it (no flash, no form errors), built once per version of the task."""
    build = functools.partial(page_html, request, task, None)
    return tracker.remembered(tracker.view_key(task, "page"), build).replace(CSRF_MARK, get_token(request))


def blank_form(kind: str, shown: bool, action: str) -> str:
    """An empty form's markup in the active language, posting to `action`, with a mark for the CSRF token.

    The same for every task but for the link: a frame per language (and for the rating form,
    shown or hidden). Rendering the rating form cost a third of the page's first rendering.
    """
    frame = FRAMES.get(("form", kind, get_language(), shown), f"tracker/{kind}_form.html", lambda: {
        "form": FORMS[kind](), "action": mark("action"), "shown": shown, "csrf_token": CSRF_MARK,
    })  # fmt: skip
    return frame.fill({"action": action})


def handle_post(request: HttpRequest, task: Task) -> HttpResponse | tuple[Form, int]:
    """Run the customer's message or rating; a redirect when it went through, else the form and a status."""
    form_class = FORMS.get(request.POST.get("form", ""), MessageForm)
    form = form_class(request.POST)
    wait = post_limit_wait(request, task.url_safe_id)
    if wait is not None:
        minutes = math.ceil(wait / 60)
        form.add_error(None, _("You have sent a lot in a short time. Please try again in %(n)d min.") % {"n": minutes})
        return form, 429
    if not form.is_valid():
        return form, 400
    try:
        if isinstance(form, RatingForm):
            task_rate(task=task, score=form.cleaned_data["score"], text=form.cleaned_data["text"])
        else:
            task_customer_message(task=task, text=form.cleaned_data["message"])
    except DomainError as exc:
        form.add_error(None, refusal(form, exc))
        return form, 409 if isinstance(exc, Conflict) else 400
    url = reverse("tracker", args=[task.url_safe_id])
    response = HttpResponseRedirect(f"{url}?sent={form.form_name}#{form.form_name}")
    response.status_code = 303  # See Other: the browser follows with a GET
    return response


def refusal(form: Form, exc: DomainError) -> str:
    """The customer's words for a refusal from the services (whose own messages are for integrators)."""
    if isinstance(form, RatingForm):
        if isinstance(exc, Conflict):
            return _("This job can be rated once, after it is complete.")
        return _("Choose a rating from 1 to 5, with a comment of up to 2000 characters.")
    return _("Your message could not be sent. Please check it and try again.")


# --- The page: frames filled from the status document ------------------------------------------

FRAMES = Frames()


def page_html(request: HttpRequest, task: Task, forms: dict[str, Form] | None) -> str:
    """The page: its frame, kept per language, organization and shape, filled with what the task shows.

    `forms` are the posted or empty forms, or None for the empty forms' markup made once per
    language (blank_form), with a mark for the CSRF token that each response fills in.
    """
    document = tracker.status_document(task)
    organization = task.organization
    address = tracker.address(task)
    tiles = settings.TRACKER_TILE_URL if origin_of(settings.TRACKER_TILE_URL) else ""
    point = address["point"] if address else None
    rating, window, eta = document["rating"], document["window"], document["eta"]
    rating_invalid = forms is not None and bool(forms["rating"].errors)
    rating_shown = document["can_rate"] or rating_invalid
    action = link("tracker", task.url_safe_id)
    if forms is None:
        rating_form = blank_form("rating", rating_shown, action)
        message_form = blank_form("message", True, action)
    else:
        context = {"action": action, "shown": rating_shown}
        rating_form = render_to_string("tracker/rating_form.html", {**context, "form": forms["rating"]}, request)
        message_form = render_to_string("tracker/message_form.html", {**context, "form": forms["message"]}, request)
    shape = {
        "map": {"tiles": tiles, "attribution": settings.TRACKER_TILE_ATTRIBUTION} if tiles and point else None,
        "address": address is not None,
        "lines": bool(address and address["lines"]),
        "entries": bool(document["entries"]),
        "rating_text": bool(rating and rating["text"]),
        "sent": SENT.get(request.GET.get("sent", "")) if forms is not None else None,
    }
    theme_url = theme_link(organization.brand_color.lstrip("#").lower(), get_script_prefix())
    look = (organization.name, organization.logo.name or "", theme_url, settings.TRACKER_POLL_SECONDS)
    key = ("page", get_language(), tracker.static_files(), look, *(repr(value) for value in shape.values()))
    frame = FRAMES.get(key, "tracker/page.html", lambda: {
        **shape, "organization": organization, "theme_url": theme_url,
        "poll_seconds": settings.TRACKER_POLL_SECONDS, "entry_template": entry_html(None),
    })  # fmt: skip
    return frame.fill({
        "title": task.title or _("Your job"),
        "status_url": link("tracker-status", task.url_safe_id),
        "version": document["version"],
        "tone": document["tone"],
        "label": document["label"],
        "detail": document["detail"],
        "detail_hidden": hidden(not document["detail"]),
        "eta": eta["text"] if eta else "",
        "eta_hidden": hidden(not eta),
        "steps": steps_html(document["step"]),
        "steps_hidden": hidden(document["step"] is None),
        "rating_hidden": hidden(not document["can_rate"] and not rating and not rating_invalid),
        "rating_done_hidden": hidden(not rating),
        "rating_score": rating["score"] if rating else "",
        "rating_text": linebreaksbr(rating["text"]) if rating else "",
        "rating_form": rating_form,
        "when_hidden": hidden(not window),
        "when_start": format_html(' datetime="{}"', window["start"]) if window else "",
        "when": window["text"] if window else "",
        "crew_hidden": hidden(not document["crew"]),
        "crew": mark_safe("".join(crew_html(person) for person in document["crew"])),  # noqa: S308 - filled frames
        "lines": mark_safe("<br>".join(conditional_escape(line) for line in address["lines"]) if address else ""),  # noqa: S308
        "lat": f"{point['lat']:f}" if point else "",
        "lng": f"{point['lng']:f}" if point else "",
        "entries": mark_safe("".join(entry_html(entry) for entry in reversed(document["entries"]))),  # noqa: S308
        "message_form": message_form,
    })  # fmt: skip


def link(name: str, token: str) -> str:
    """`reverse(name, args=[token])` for the page or its JSON: the route reversed once per script
    prefix, with the token put in (a reverse costs 0.02 ms; a token's characters need no quoting)."""
    return _reversed(name, get_script_prefix()).replace(LINK_GAP, token)


LINK_GAP = "~gap~"  # left as it is by reverse's quoting, and in no token


@functools.lru_cache(maxsize=32)
def _reversed(name: str, prefix: str) -> str:
    return reverse(name, args=[LINK_GAP])  # under `prefix`, the script prefix of the caller's thread


@functools.lru_cache(maxsize=256)
def theme_link(colour: str, prefix: str) -> str:
    """The brand stylesheet's link, reversed once per colour and script prefix (in the key only)."""
    return reverse("tracker-theme", args=[colour])


def hidden(yes: bool) -> str:
    return " hidden" if yes else ""


def steps_html(step: int | None) -> str:
    """The step indicator's items: the same for every task at that step, in a language."""
    key = ("steps", get_language(), step)
    return FRAMES.get(key, "tracker/page.html#steps", lambda: {"steps": tracker.steps(step)}).fill({})


def crew_html(person: dict) -> str:
    photo = person["photo"]
    frame = FRAMES.get(("crew", get_language(), bool(photo)), "tracker/page.html#crew-member", lambda: {"photo": photo})
    return frame.fill({**person, "photo": photo or "", "initial": person["first_name"][:1].upper()})


def entry_html(entry: dict | None) -> str:
    """A journal entry's markup; None: the empty one the page's script copies for a new entry."""
    frame = FRAMES.get(("entry", get_language()), "tracker/entry.html", dict)
    if entry is None:
        return frame.fill(dict.fromkeys(("customer", "id", "label", "time", "time_text", "notes", "files"), "")
                          | {"notes_hidden": " hidden", "files_hidden": " hidden"})  # fmt: skip
    files = "".join(file_html(file, entry["label"]) for file in entry["files"])
    return frame.fill({
        **entry,
        "customer": " entry-customer" if entry["from_customer"] else "",
        "notes": linebreaksbr(entry["notes"]),
        "notes_hidden": hidden(not entry["notes"]),
        "files": mark_safe(files),  # noqa: S308 - filled frames
        "files_hidden": hidden(not entry["files"]),
    })  # fmt: skip


def file_html(file: dict, label: str) -> str:
    image = file["image"]
    frame = FRAMES.get(("file", get_language(), image), "tracker/entry.html#file", lambda: {"image": image})
    return frame.fill({**file, "label": label})


@require_safe
def tracker_status(request: HttpRequest, token: str) -> HttpResponse:
    """What changed, as JSON for the page's polling; 304 while the task's version stays the same."""
    task, code = live_task(token)
    if task is None:
        body = envelope("not_found", "Not found.") if code == 404 else envelope("gone", "This link has expired.")
        return protect(JsonResponse(body, status=code))
    tag = tracker.etag(task, get_language())
    response = get_conditional_response(request, etag=tag)
    if response is None:
        since = request.GET.get("since", "")
        since_id = int(since) if since.isdigit() and len(since) <= 18 else 0  # stays within a bigint
        response = JsonResponse(tracker.cached_status_document(task, since_id))
    response["ETag"] = tag
    patch_vary_headers(response, ["Accept-Language"])
    return protect(response, task.organization, max_age=STATUS_MAX_AGE)


@require_safe
def tracker_theme(request: HttpRequest, colour: str) -> HttpResponse:
    """The brand colours as CSS custom properties: a stylesheet, so the page needs no inline style."""
    response = HttpResponse(theme_css(f"#{colour}"), content_type="text/css; charset=utf-8")
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    response["X-Content-Type-Options"] = "nosniff"
    return response
