"""The default template set every organization starts with (also used by the data migration)."""

from typing import Any

DEFAULT_SET_NAME = "Default"

# (event, audience, channel, urgent, subject, body)
DEFAULT_RULES: tuple[tuple[str, str, str, bool, str, str], ...] = (
    (
        "created", "customer", "sms", False, "",
        "Hi {{ customer_name }}, {{ org_name }} has booked {{ task_title }} for {{ when }}. "
        "Follow it here: {{ tracker_url }}",
    ),
    (
        "created", "customer", "email", False, "{{ org_name }}: {{ task_title }} is booked",
        "Hi {{ customer_name }},\n\n{{ org_name }} has booked {{ task_title }} for {{ when }}.\n\n"
        "Follow it, see who is coming and send us a message here:\n{{ tracker_url }}\n\n{{ org_name }}",
    ),
    (
        "assigned", "crew", "sms", False, "",
        "{{ org_name }}: you are on {{ task_title }} for {{ customer_name }}, {{ when }}"
        "{% if address %} at {{ address }}{% endif %}. {{ tracker_url }}",
    ),
    (
        "status:ENROUTE", "customer", "sms", True, "",
        "{{ crew_first_names|default:'Your crew' }} from {{ org_name }} is on the way. "
        "Follow along: {{ tracker_url }}",
    ),
    (
        "status:COMPLETE", "customer", "email", False, "{{ org_name }}: {{ task_title }} is complete",
        "Hi {{ customer_name }},\n\n{{ task_title }} is complete. How did we do? Rate the job here:\n"
        "{{ tracker_url }}\n\nThank you,\n{{ org_name }}",
    ),
    (
        "rescheduled", "customer", "sms", False, "",
        "{{ org_name }}: {{ task_title }} is now {{ when }}. Details: {{ tracker_url }}",
    ),
    (
        "reminder", "crew_or_creator", "sms", False, "",
        "Reminder: {{ task_title }} for {{ customer_name }}, {{ when }}. {{ tracker_url }}",
    ),
    (
        "reminder", "crew_or_creator", "email", False, "Reminder: {{ task_title }}",
        "Hi {{ recipient_name }},\n\nA reminder about {{ task_title }} for {{ customer_name }}, {{ when }}.\n\n"
        "{{ tracker_url }}\n\n{{ org_name }}",
    ),
    (
        "digest", "crew", "email", False, "{{ org_name }}: your tasks for {{ date }}",
        "Hi {{ recipient_name }},\n\nYour tasks for {{ date }}:\n\n"
        "{% for task in tasks %}- {{ task.when }}: {{ task.title }}{% if task.address %}, {{ task.address }}"
        "{% endif %}\n  {{ task.tracker_url }}\n{% endfor %}\n{{ org_name }}",
    ),
)  # fmt: skip


def default_rule_values() -> list[dict[str, Any]]:
    keys = ("event", "audience", "channel", "urgent", "subject", "body")
    return [dict(zip(keys, rule, strict=True)) for rule in DEFAULT_RULES]


def create_default_set(organization_id: int, template_set_model: Any, template_rule_model: Any) -> Any:
    """Create the organization's default set with its rules; models are passed in so migrations can call it."""
    template_set, created = template_set_model.objects.get_or_create(
        organization_id=organization_id, is_default=True, defaults={"key": "", "name": DEFAULT_SET_NAME}
    )
    if created:
        template_rule_model.objects.bulk_create(
            [template_rule_model(template_set=template_set, **values) for values in default_rule_values()]
        )
    return template_set
