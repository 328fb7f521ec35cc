"""The two things a customer can send from the tracker page: a message, and a rating once the job is done."""

from django import forms
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from .services import MAX_MESSAGE_LENGTH

SCORES = [(score, str(score)) for score in range(1, 6)]


class MessageForm(forms.Form):
    form_name = "message"

    message = forms.CharField(
        label=_("Your message"),
        max_length=MAX_MESSAGE_LENGTH,
        strip=True,
        help_text=format_lazy(_("Up to {max} characters. It goes to our dispatch team."), max=MAX_MESSAGE_LENGTH),
        error_messages={
            "required": _("Write a message before sending it."),
            "max_length": _("Keep your message to %(limit_value)d characters or fewer."),
        },
    )


class RatingForm(forms.Form):
    form_name = "rating"

    score = forms.TypedChoiceField(
        label=_("How did we do?"),
        choices=SCORES,
        coerce=int,
        error_messages={"required": _("Choose a rating from 1 to 5."), "invalid_choice": _("Choose from 1 to 5.")},
    )
    text = forms.CharField(
        label=_("Anything you would like to add? (optional)"),
        required=False,
        max_length=MAX_MESSAGE_LENGTH,
        strip=True,
        error_messages={"max_length": _("Keep your comment to %(limit_value)d characters or fewer.")},
    )


FORMS = {form.form_name: form for form in (MessageForm, RatingForm)}
