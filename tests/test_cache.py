"""The shared cache on real Redis: one redis-py client per connection pool, shared by threads."""

import threading

import pytest
from django.core.cache import cache

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
