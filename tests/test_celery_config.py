"""The Celery app's configuration: Django's CELERY_* settings, read from a plain dict (taskhub.celery)."""

from django.conf import settings

from taskhub.celery import app, celery_settings


def test_the_app_takes_djangos_celery_settings_and_celerys_defaults_for_the_rest():
    assert app.conf.task_routes == settings.CELERY_TASK_ROUTES
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.beat_schedule.keys() == settings.CELERY_BEAT_SCHEDULE.keys()
    assert app.conf.task_always_eager is False  # set nowhere: Celery's default
    assert app.conf.task_repr_maxlevels == 3


def test_the_configuration_is_read_from_a_plain_dict_of_the_celery_settings():
    source = celery_settings(settings)
    assert type(source) is dict  # a miss is a dict's miss, not an AttributeError raised through Django's settings
    assert source["CELERY_TASK_SERIALIZER"] == "json"
    assert "CELERY_TASK_ALWAYS_EAGER" not in source
    assert all(name.startswith("CELERY_") for name in source)
    assert any(type(mapping) is dict and mapping.keys() == source.keys() for mapping in app.conf.maps)
