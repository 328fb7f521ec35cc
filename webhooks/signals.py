"""An endpoint saved or deleted changes its organization's configuration stamp (taskhub.configcache)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from taskhub.configcache import changed_with

from .models import Endpoint


@receiver([post_save, post_delete], sender=Endpoint, dispatch_uid="webhooks.endpoint_config_changed")
def endpoint_changed(sender, instance: Endpoint, **kwargs) -> None:
    changed_with(instance)
