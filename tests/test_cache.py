"""The shared cache on real Redis: one redis-py client per connection pool, shared by threads."""

import threading

import pytest
from django.core.cache import cache

from taskhub.cache import get_or_note

pytestmark = pytest.mark.requires_redis


def test_every_operation_uses_the_same_client_of_the_pool():
    backend = cache._cache
    assert backend.get_client() is backend.get_client(write=True)


def test_threads_share_the_client_and_each_reads_its_own_writes():
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                cache.set(f"cache-test:{n}:{i}", (n, i), 30)
                assert cache.get(f"cache-test:{n}:{i}") == (n, i)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    cache.delete_many([f"cache-test:{n}:{i}" for n in range(8) for i in range(50)])


@pytest.mark.parametrize("alias", ["default", "locmem"])
def test_get_or_note_answers_the_second_miss_that_the_value_is_wanted_again(settings, alias):
    """The first miss leaves a note (on Redis in the same round trip); the next miss finds it;
    a value set since is read as any other."""
    settings.CACHES = {**settings.CACHES, "locmem": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                                     "LOCATION": "get-or-note"}}  # fmt: skip
    from django.core.cache import caches

    shared = caches[alias]
    key = f"cache-test:noted:{alias}"
    shared.delete(key)
    shared.delete(f"{key}:asked")
    assert get_or_note(shared, key, 30) == (None, False)
    assert get_or_note(shared, key, 30) == (None, True)
    shared.set(key, {"page": "<p>built</p>"}, 30)
    assert get_or_note(shared, key, 30) == ({"page": "<p>built</p>"}, True)
    shared.delete(key)


def test_the_note_lives_no_longer_than_the_value_would_have():
    key = "cache-test:noted:life"
    cache.delete(key)
    assert get_or_note(cache, key, 7) == (None, False)
    client = cache._cache.get_client(write=True)
    assert 0 < client.ttl(cache.make_key(key)) <= 7
    cache.delete(key)
