"""TaskHub settings, configured from the environment (see the table in README.md)."""

import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("TASKHUB_VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production-" + "x" * 20
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")  # old keys still accepted while rotating

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "taskhub",
    "tasks",
    "notifications",
    "webhooks",
]

MIDDLEWARE = [
    "taskhub.health.ProbeMiddleware",  # /healthz, /readyz, /metrics: before host checks and redirects
    "taskhub.logs.RequestIdMiddleware",
    "taskhub.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "taskhub.middleware.ApiLimitsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# One-time secrets shown in admin messages stay on the server, not in a (signed, readable) cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "taskhub.urls"
# A 404 from the API must stay a 404 in the envelope, not become a redirect to a slashed URL.
APPEND_SLASH = False
WSGI_APPLICATION = "taskhub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'taskhub.sqlite3'}"
DATABASES = {
    "default": dj_database_url.parse(DATABASE_URL, conn_max_age=600, conn_health_checks=True),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default serves web, worker and beat at once: WAL lets readers and one
    # writer work side by side, and IMMEDIATE transactions avoid upgrade deadlocks.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and env_bool(
    "DATABASE_PREPARED_STATEMENTS", True
):
    # The server binds the parameters, so psycopg can prepare a statement a connection has run five
    # times: PostgreSQL then parses it once per connection and can reuse its plan, which for the
    # tracker's and the upsert's statements costs more than running them (docs/performance.md).
    # Behind a pooler in transaction mode that cannot keep prepared statements, set it to 0.
    DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, cache and Celery ----------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
BROKER_DIR = VAR_DIR / "broker"
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "taskhub.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }
# Each process's own copy of the tracker pages and documents it showed last (docs/tracker.md).
CACHES["tracker-local"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "tracker",
    "OPTIONS": {"MAX_ENTRIES": env_int("TRACKER_LOCAL_ENTRIES", 2000)},
}

# The embedded broker: kombu keeps messages as files under var/broker (no server to install).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL or "filesystem://localhost//"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),  # fanout tables (worker remote control)
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": 3600}
)
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "taskhub.broker:Transport"  # one redis-py client per pool, not per command
# Celery's Django fix-up closes a worker thread's database connections before and after every task
# unless given a reuse count, whatever CONN_MAX_AGE says (celery/celery#4116): each task paid a new
# PostgreSQL backend and lost the statements it had prepared. A count out of reach turns that off;
# taskhub.celery gives each task the lifecycle Django gives a request instead.
CELERY_DB_REUSE_MAX = 2**62
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {}
CELERY_BEAT_SCHEDULE["sweep-webhook-deliveries"] = {
    "task": "webhooks.tasks.sweep_webhook_deliveries",
    "schedule": 5.0,
    "options": {"expires": 5},
}
# One queue per kind of work, so a flood of one cannot starve the others (docs/operations.md).
CELERY_TASK_QUEUES = [
    Queue(name, Exchange(name), routing_key=name) for name in ("default", "webhooks", "notifications")
]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"webhooks.*": {"queue": "webhooks"}, "notifications.*": {"queue": "notifications"}}
if os.environ.get("CELERY_CONCURRENCY"):
    CELERY_WORKER_CONCURRENCY = env_int("CELERY_CONCURRENCY", 4)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # workers log through LOGGING below, JSON included
CELERY_BEAT_SCHEDULE["beat-heartbeat"] = {
    "task": "taskhub.tasks.beat_heartbeat",
    "schedule": 10.0,
    "options": {"expires": 10},
}
CELERY_BEAT_SCHEDULE["prune-old-records"] = {
    "task": "taskhub.tasks.prune_old_records",
    "schedule": crontab(hour=3, minute=17),
}

# --- Outgoing webhooks ----------------------------------------------------------------------
WEBHOOK_ALLOWED_NETWORKS = env_list("WEBHOOK_ALLOWED_NETWORKS")  # CIDRs let through the SSRF guard
WEBHOOK_TIMEOUT_SECONDS = float(os.environ.get("WEBHOOK_TIMEOUT_SECONDS", 15))
WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = env_int("WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT", 16)
WEBHOOK_SWEEP_BATCH = env_int("WEBHOOK_SWEEP_BATCH", 200)
WEBHOOK_SWEEP_THREADS = env_int("WEBHOOK_SWEEP_THREADS", 16)
WEBHOOK_SEND_THREADS = env_int("WEBHOOK_SEND_THREADS", 32)  # requests one worker process has in flight

# --- Notifications: email, SMS (docs/notifications.md) -------------------------------------
# Django's default mailer, from the classic EMAIL_* variables. Without EMAIL_HOST, `make run`
# (DEBUG) writes emails to the console; production falls back to Django's SMTP on localhost.
EMAIL_TIMEOUT_SECONDS = env_int("EMAIL_TIMEOUT", 15)
# A sending thread keeps its connection to the mail server open while it is used at least this often.
EMAIL_KEEPALIVE_SECONDS = env_int("EMAIL_KEEPALIVE", 30)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "TaskHub <notifications@localhost>")
if os.environ.get("EMAIL_HOST") or not DEBUG:
    MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {
                "host": os.environ.get("EMAIL_HOST") or "localhost",
                "port": env_int("EMAIL_PORT", 25),
                "username": os.environ.get("EMAIL_HOST_USER", ""),
                "password": os.environ.get("EMAIL_HOST_PASSWORD", ""),
                "use_tls": env_bool("EMAIL_USE_TLS", False),
                "timeout": EMAIL_TIMEOUT_SECONDS,
            },
        }
    }
else:
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
SMS_BACKEND = os.environ.get("SMS_BACKEND", "console")  # twilio | console
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "")
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "")
TWILIO_FROM_NUMBER = os.environ.get("TWILIO_FROM_NUMBER", "")
TWILIO_API_BASE_URL = os.environ.get("TWILIO_API_BASE_URL", "https://api.twilio.com").rstrip("/")
NOTIFICATION_SWEEP_BATCH = env_int("NOTIFICATION_SWEEP_BATCH", 100)
CELERY_BEAT_SCHEDULE["sweep-notifications"] = {
    "task": "notifications.tasks.sweep_notifications",
    "schedule": 5.0,
    "options": {"expires": 5},
}
CELERY_BEAT_SCHEDULE["plan-reminders"] = {
    "task": "notifications.tasks.plan_reminders",
    "schedule": 30.0,
    "options": {"expires": 30},
}
CELERY_BEAT_SCHEDULE["plan-digests"] = {
    "task": "notifications.tasks.plan_digests",
    "schedule": 60.0,
    "options": {"expires": 60},
}

# --- Auth, i18n, static ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
MEDIA_URL = "media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security (production defaults; DEBUG relaxes the transport-level ones) -----------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

# --- REST API -------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["taskhub.auth.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["taskhub.auth.IsOrganizationClient"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["taskhub.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "taskhub.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_THROTTLE_CLASSES": ["taskhub.ratelimit.OrganizationRateThrottle"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TaskHub API",
    "DESCRIPTION": "Create, update and follow field-service tasks; Arrivy- and Travtus-compatible routes.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "taskhub.schema.add_error_envelope",
    ],
    "ENUM_NAME_OVERRIDES": {
        "TaskStatusTypeEnum": "tasks.models.StatusType",
        "ImportanceEnum": "tasks.models.Importance",
        "CoarseStatusEnum": ["created", "in_progress", "completed", "deleted"],
        "StatusSourceEnum": "tasks.models.TaskStatus.Source",
    },
}

SPECTACULAR_SETTINGS.setdefault("ENUM_NAME_OVERRIDES", {})["DeliveryStatusEnum"] = "webhooks.models.Delivery.Status"

API_TOKEN_TTL_SECONDS = env_int("API_TOKEN_TTL_SECONDS", 3600)
API_TOKEN_FAILURE_LIMIT = os.environ.get("API_TOKEN_FAILURE_LIMIT", "10/minute")  # per client_id and per IP
API_RATE_LIMIT = os.environ.get("API_RATE_LIMIT", "600/minute")  # per organization
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 256 * 1024)
API_MAX_UPLOAD_BYTES = env_int("API_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)  # multipart to .../attachments
ATTACHMENT_LINK_MAX_AGE = env_int("ATTACHMENT_LINK_MAX_AGE", 7 * 24 * 3600)  # signed file links, seconds
IDEMPOTENCY_TTL_SECONDS = env_int("IDEMPOTENCY_TTL_SECONDS", 24 * 3600)
IDEMPOTENCY_WAIT_SECONDS = float(os.environ.get("IDEMPOTENCY_WAIT_SECONDS", 10))  # then 409 "in progress"

# --- Customer tracker page (docs/tracker.md) -------------------------------------------------
TRACKER_EXPIRY_DAYS = env_int("TRACKER_EXPIRY_DAYS", 14)  # after COMPLETE or CANCELLED: 410 Gone
TRACKER_POLL_SECONDS = env_int("TRACKER_POLL_SECONDS", 15)
TRACKER_CACHE_SECONDS = env_int("TRACKER_CACHE_SECONDS", 60)  # a built page or status document; 0: none
# Map tiles, loaded by the customer's browser; empty turns the map off. The host joins the page's CSP.
TRACKER_TILE_URL = os.environ.get("TRACKER_TILE_URL", "https://tile.openstreetmap.org/{z}/{x}/{y}.png")
TRACKER_TILE_ATTRIBUTION = os.environ.get("TRACKER_TILE_ATTRIBUTION", "© OpenStreetMap contributors")
# Messages and ratings posted from one tracker link, and from one IP address, per window.
TRACKER_POST_LIMIT_PER_TOKEN = env_int("TRACKER_POST_LIMIT_PER_TOKEN", 5)
TRACKER_POST_LIMIT_PER_IP = env_int("TRACKER_POST_LIMIT_PER_IP", 20)
TRACKER_POST_WINDOW_SECONDS = env_int("TRACKER_POST_WINDOW_SECONDS", 600)

# --- Operations: readiness, metrics, retention (docs/operations.md) --------------------------
READY_BEAT_MAX_AGE_SECONDS = env_int("READY_BEAT_MAX_AGE_SECONDS", 60)
READY_WEBHOOK_MAX_DUE_AGE_SECONDS = env_int("READY_WEBHOOK_MAX_DUE_AGE_SECONDS", 300)
READY_NOTIFICATION_MAX_DUE_AGE_SECONDS = env_int("READY_NOTIFICATION_MAX_DUE_AGE_SECONDS", 300)
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
METRICS_ALLOWED_NETWORKS = env_list("METRICS_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
METRICS_WINDOW_SECONDS = env_int("METRICS_WINDOW_SECONDS", 300)
RETENTION_DAYS = env_int("RETENTION_DAYS", 30)

# JSON lines in production, readable lines under DEBUG; every line carries the request id.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "taskhub.logs.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "taskhub.logs.json_formatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["request_id"], "formatter": LOG_FORMAT},
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # A full connection pool only means a connection is closed after use instead of kept alive.
    "loggers": {"urllib3.connectionpool": {"level": "ERROR"}},
}
