"""Provider endpoints (Twilio): inbound SMS and delivery status callbacks, both signature-checked."""

from functools import wraps
from xml.sax.saxutils import escape

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from . import inbound, twilio


def twilio_signed(view):
    """Refuse (403) a request whose X-Twilio-Signature does not match PUBLIC_BASE_URL + path + its form."""

    @wraps(view)
    def checked(request: HttpRequest) -> HttpResponse:
        url = settings.PUBLIC_BASE_URL + request.get_full_path()
        params = [(name, value) for name, values in request.POST.lists() for value in values]
        if not twilio.is_valid(settings.TWILIO_AUTH_TOKEN, url, params, request.headers.get("X-Twilio-Signature", "")):
            return HttpResponseForbidden("Invalid or missing X-Twilio-Signature.")
        return view(request)

    return checked


def twiml(message: str = "") -> HttpResponse:
    body = f"<Message>{escape(message)}</Message>" if message else ""
    xml = f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'
    return HttpResponse(xml, content_type="text/xml; charset=utf-8")


@csrf_exempt
@require_POST
@twilio_signed
def twilio_sms(request: HttpRequest) -> HttpResponse:
    """An SMS to our number: opt-out keywords, HELP, or a reply that lands on the task's journal."""
    answer = inbound.handle_inbound(sender=request.POST.get("From", ""), body=request.POST.get("Body", ""))
    return twiml(answer)


@csrf_exempt
@require_POST
@twilio_signed
def twilio_status(request: HttpRequest) -> HttpResponse:
    """A delivery report for a message we sent."""
    inbound.handle_status(
        message_id=request.POST.get("MessageSid", ""),
        status=request.POST.get("MessageStatus", ""),
        error_code=request.POST.get("ErrorCode", ""),
    )
    return HttpResponse(status=204)
