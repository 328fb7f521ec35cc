"""Per-organization rate limit: an atomic Redis counter, 429 in the envelope, X-RateLimit-* headers."""

import threading

import pytest

from taskhub import ratelimit
from taskhub.ratelimit import redis_client

pytestmark = [pytest.mark.django_db, pytest.mark.requires_redis]


@pytest.fixture(autouse=True)
def clean_redis(settings):
    """Flush only the Redis database this suite was given."""
    redis_client(settings.REDIS_URL).flushdb()


def test_requests_past_the_limit_get_429_with_retry_after(api, settings, window_start):
    settings.API_RATE_LIMIT = "3/minute"
    for remaining in (2, 1, 0):
        response = api.get("/api/me")
        assert response.status_code == 200
        assert response["X-RateLimit-Limit"] == "3"
        assert response["X-RateLimit-Remaining"] == str(remaining)
        assert response["X-RateLimit-Reset"] == "55"
    refused = api.get("/api/me")
    assert refused.status_code == 429
    assert refused.json()["error"]["type"] == "rate_limited"
    assert "retry in 55 seconds" in refused.json()["error"]["message"]
    assert refused["Retry-After"] == "55"
    assert refused["X-RateLimit-Remaining"] == "0"


def test_another_organization_has_its_own_budget(api, other_api, settings, window_start):
    settings.API_RATE_LIMIT = "2/minute"
    for _ in range(3):
        api.get("/api/me")
    assert api.get("/api/me").status_code == 429
    response = other_api.get("/api/me")
    assert response.status_code == 200
    assert response["X-RateLimit-Remaining"] == "1"


def test_the_budget_comes_back_in_the_next_window(api, settings, window_start):
    settings.API_RATE_LIMIT = "1/minute"
    assert api.get("/api/me").status_code == 200
    assert api.get("/api/me").status_code == 429
    window_start.shift(55)
    response = api.get("/api/me")
    assert response.status_code == 200
    assert response["X-RateLimit-Remaining"] == "0"


def test_unauthenticated_requests_do_not_spend_the_budget(api, settings, window_start, client):
    settings.API_RATE_LIMIT = "1/minute"
    for _ in range(3):
        assert client.get("/api/me").status_code == 401
    assert api.get("/api/me").status_code == 200


def test_parallel_hits_are_each_counted_once(settings):
    counts: list[int] = []

    def hit() -> None:
        window = ratelimit.hit("parallel", limit=1000, period=60)
        counts.append(window.count)

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 21))


def test_an_unreachable_redis_lets_requests_through(api, settings, caplog):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.API_RATE_LIMIT = "1/minute"
    for _ in range(3):
        response = api.get("/api/me")
        assert response.status_code == 200
        assert "X-RateLimit-Limit" not in response
    assert "Rate limit store unavailable" in caplog.text


@pytest.mark.parametrize(("rate", "parsed"), [("600/minute", (600, 60)), ("5/s", (5, 1)), ("100/hour", (100, 3600))])
def test_rates_read_like_drf_rates(rate, parsed):
    assert ratelimit.parse_rate(rate) == parsed


def test_a_malformed_rate_is_refused():
    with pytest.raises(ValueError, match="600/minute"):
        ratelimit.parse_rate("lots")
