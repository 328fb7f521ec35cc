"""The product's settings, served with the bench URLconf (product routes plus the baselines)."""

from taskhub.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
# The bench talks plain HTTP on loopback: the admin's session and CSRF cookies must come back.
SESSION_COOKIE_SECURE = False
CSRF_COOKIE_SECURE = False
