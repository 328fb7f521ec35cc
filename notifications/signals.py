"""Configuration saved or deleted changes its organization's configuration stamp (taskhub.configcache).

That is a template set or rule, the notification settings (but for the digest's own bookkeeping)
and an opt-out: planning keeps each per process.
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from taskhub.configcache import changed_with, config_changed

from .models import NotificationSettings, NotificationSettingsQuerySet, Suppression, TemplateRule, TemplateSet


@receiver([post_save, post_delete], sender=TemplateSet, dispatch_uid="notifications.template_set_config_changed")
def template_set_changed(sender, instance: TemplateSet, **kwargs) -> None:
    changed_with(instance)


@receiver([post_save, post_delete], sender=TemplateRule, dispatch_uid="notifications.template_rule_config_changed")
def template_rule_changed(sender, instance: TemplateRule, **kwargs) -> None:
    organization_id = (
        TemplateSet.objects.filter(pk=instance.template_set_id).values_list("organization_id", flat=True).first()
    )
    if organization_id is not None:  # None: the set is being deleted with its rules, and says so itself
        config_changed(organization_id)


@receiver([post_save, post_delete], sender=NotificationSettings, dispatch_uid="notifications.settings_config_changed")
def settings_changed(sender, instance: NotificationSettings, update_fields=None, **kwargs) -> None:
    if update_fields is not None and set(update_fields) <= NotificationSettingsQuerySet.operational_fields:
        return  # the digest noting the day it covered
    changed_with(instance)


@receiver([post_save, post_delete], sender=Suppression, dispatch_uid="notifications.suppression_config_changed")
def suppression_changed(sender, instance: Suppression, **kwargs) -> None:
    changed_with(instance)
