"""Give every existing organization the default template set and notification settings."""

from django.db import migrations

from notifications.defaults import create_default_set


def create_defaults(apps, schema_editor):
    Organization = apps.get_model("taskhub", "Organization")
    TemplateSet = apps.get_model("notifications", "TemplateSet")
    TemplateRule = apps.get_model("notifications", "TemplateRule")
    NotificationSettings = apps.get_model("notifications", "NotificationSettings")
    for organization_id in Organization.objects.values_list("pk", flat=True):
        create_default_set(organization_id, TemplateSet, TemplateRule)
        NotificationSettings.objects.get_or_create(organization_id=organization_id)


class Migration(migrations.Migration):
    dependencies = [("notifications", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
