"""Settings for the regional MDT app. Every deploy-time value comes from an environment variable
with a default that works on a developer's machine (PostgreSQL and Redis on localhost)."""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from csp.constants import NONCE, NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and env_bool("REQUIRE_SECRET_KEY", False):
        raise RuntimeError("SECRET_KEY must be set in production.")
    # A development key: `make run` and the tests run without configuration. Production sets
    # SECRET_KEY (and REQUIRE_SECRET_KEY=1 so a missing one stops the server from starting).
    SECRET_KEY = "dev-only-insecure-key-change-me-0123456789abcdefghijklmnopqrstuvwxyz"  # noqa: S105
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_htmx",
    "csp",
    "axes",
    "accounts",
    "records",
    "registry",
    "mdt",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "accounts.query_count.QueryCountMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.htmx_redirects.HtmxLoginRedirectMiddleware",
    "accounts.session_limits.SessionLimitsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.audit.AuditMiddleware",
    "accounts.no_store.NoStoreMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": False,
        "OPTIONS": {
            "environment": "config.jinja2.environment",
            "autoescape": True,
            "context_processors": ["config.navigation.navigation"],
        },
    },
    {
        # The Django admin keeps its own templates.
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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/mdt"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "60")),
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Per process, in memory: the live meeting's follower fragment is rendered once per change and
# process (mdt.views_live.live_state). Deliberately not Redis: the fragment holds patient data,
# and Redis holds none (Celery messages carry row ids only). A cache in PostgreSQL, shared by the
# processes, was measured and did no better (docs/benchmarks.md, live_meeting).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "TIMEOUT": 300}}
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Redis: a message a worker took and never acknowledged (the worker died) goes back on its queue
# once it is older than the visibility timeout; workers look for such messages every restore
# interval x throttle seconds. Kombu's defaults (3600 s; 10 s x 10); the fault tests shorten them.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT_S", "3600")),
    "unacked_restore_interval": int(os.environ.get("CELERY_UNACKED_RESTORE_INTERVAL_S", "10")),
    "unacked_restore_throttle": int(os.environ.get("CELERY_UNACKED_RESTORE_THROTTLE", "10")),
}
CELERY_BEAT_SCHEDULE = {
    "sweep-unpopulated-cases": {"task": "mdt.tasks.sweep_unpopulated_cases", "schedule": 300.0},
    "sweep-registry-imports": {"task": "registry.tasks.sweep_registry_imports", "schedule": 300.0},
    "sweep-stuck-letters": {
        "task": "mdt.letter_tasks.sweep_stuck_letters",
        "schedule": float(os.environ.get("LETTER_SWEEP_INTERVAL_S", "120")),
    },
    "poll-letter-acknowledgements": {
        "task": "mdt.letter_tasks.poll_letter_acknowledgements",
        "schedule": float(os.environ.get("LETTER_ACK_POLL_INTERVAL_S", "60")),
    },
}
# A letter waiting this long for a worker (to render or send) is re-enqueued by the sweep.
LETTER_SWEEP_AFTER = timedelta(seconds=int(os.environ.get("LETTER_SWEEP_AFTER_S", "600")))

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "mdt:dashboard"
LOGOUT_REDIRECT_URL = "accounts:login"

# Lockout after repeated failures, per username (so one user's mistakes from a shared hospital
# IP address do not lock out a whole ward).
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=30)
AXES_LOCKOUT_PARAMETERS = ["username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.jinja"
AXES_VERBOSE = False

# Sessions: 15 minutes idle, 12 hours absolute (accounts.session_limits enforces both; polling
# does not count as activity). A dialog offers to stay signed in SESSION_WARNING_BEFORE the idle
# limit (static/js/session.js).
SESSION_IDLE_TIMEOUT = timedelta(minutes=15)
SESSION_ABSOLUTE_TIMEOUT = timedelta(hours=12)
SESSION_WARNING_BEFORE = timedelta(minutes=2)
SESSION_COOKIE_AGE = int(SESSION_ABSOLUTE_TIMEOUT.total_seconds())
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Secure cookies are sent by browsers over https and to http://localhost; set to 0 only for a
# plain-http deployment you have chosen not to protect.
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", True)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_COOKIE_HTTPONLY = True  # htmx sends the token from the page (hx-headers), not the cookie
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
X_FRAME_OPTIONS = "DENY"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        # NHS.UK frontend's stylesheet loads the Frutiger web font from assets.nhs.uk.
        "font-src": [SELF, "https://assets.nhs.uk"],
        "connect-src": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
        "base-uri": [SELF],
        "object-src": [NONE],
    },
}

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT") or BASE_DIR / "var" / "media")  # letters' PDFs

# NHS numbers from the 999 range are for testing; the demo region and the tests allow them,
# production does not.
ALLOW_SYNTHETIC_NHS_NUMBERS = env_bool("ALLOW_SYNTHETIC_NHS_NUMBERS", False)

# Benchmarks read the number of SQL queries a request made from a response header.
QUERY_COUNT_HEADER = env_bool("QUERY_COUNT_HEADER", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_patient_identifiers": {"()": "accounts.log_redaction.RedactPatientIdentifiers"}
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact_patient_identifiers"],
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # WeasyPrint logs every step of every render at INFO (about ten lines a letter).
        "weasyprint.progress": {"level": "WARNING"},
    },
}

CSRF_FAILURE_VIEW = "config.error_views.csrf_failure"

# Lockout is per username on purpose (see AXES_LOCKOUT_PARAMETERS above): hospital staff share
# NAT addresses, so locking by IP would lock out whole sites.
SILENCED_SYSTEM_CHECKS = ["axes.W006"]

# The federated record store.
FEDERATION_BREAKER_FAILURES = int(os.environ.get("FEDERATION_BREAKER_FAILURES", "1"))
FEDERATION_BREAKER_COOL_OFF_S = float(os.environ.get("FEDERATION_BREAKER_COOL_OFF_S", "30"))
FEDERATION_CONCURRENCY_PER_SOURCE = int(os.environ.get("FEDERATION_CONCURRENCY_PER_SOURCE", "16"))
# "Refresh all" splits a meeting between this many tasks (one per worker process: parsing is CPU).
FEDERATION_TASK_CHUNKS = int(os.environ.get("FEDERATION_TASK_CHUNKS", "2"))
FEDERATION_STALE_AFTER_HOURS = int(os.environ.get("FEDERATION_STALE_AFTER_HOURS", "24"))
# The demographics service (PDS shape): the one remote call allowed inside a request.
DEMOGRAPHICS_URL = os.environ.get("DEMOGRAPHICS_URL", "http://127.0.0.1:8105/fhir")
DEMOGRAPHICS_TIMEOUT_S = float(os.environ.get("DEMOGRAPHICS_TIMEOUT_S", "2"))
# Record sources answered inside this system, by Source.kind: the dotted path of each kind's
# adapter (records.internal_sources), so that records never imports the app that owns it.
RECORD_SOURCE_ADAPTERS = {"registry": "registry.source.answer_for_patients"}
# Letters to GPs over NHS MESH (mdt.mesh; docs/letters-mesh.md). The defaults are the local
# mesh-sandbox that `make run` and the tests start (scripts/mesh-sandbox.sh) and its canned
# sending mailbox; production sets the trust's mailbox, password, shared key and client certificate.
MESH_URL = os.environ.get("MESH_URL", "http://127.0.0.1:8700")
MESH_MAILBOX_ID = os.environ.get("MESH_MAILBOX_ID", "X26ABC1")
MESH_MAILBOX_PASSWORD = os.environ.get("MESH_MAILBOX_PASSWORD", "password")
MESH_SHARED_KEY = os.environ.get("MESH_SHARED_KEY", "TestKey")
MESH_CLIENT_CERT = os.environ.get("MESH_CLIENT_CERT", "")  # PEM file: mutual TLS to live MESH
MESH_CLIENT_KEY = os.environ.get("MESH_CLIENT_KEY", "")
MESH_CA_BUNDLE = os.environ.get("MESH_CA_BUNDLE", "")  # empty: mesh-client's bundle for NHS hosts
MESH_WORKFLOW_ID = os.environ.get("MESH_WORKFLOW_ID", "GPCONNECT_SEND_DOCUMENT")
MESH_TIMEOUT_S = float(os.environ.get("MESH_TIMEOUT_S", "60"))
# A failed send is retried after MESH_RETRY_BASE_S, doubling up to MESH_RETRY_MAX_S, and the
# letter is marked failed after MESH_SEND_MAX_ATTEMPTS attempts. The longest wait stays below the
# broker's visibility timeout: Redis would hand a delayed task that waits longer to a second
# worker before it is due.
MESH_SEND_MAX_ATTEMPTS = int(os.environ.get("MESH_SEND_MAX_ATTEMPTS", "8"))
MESH_RETRY_BASE_S = float(os.environ.get("MESH_RETRY_BASE_S", "60"))
MESH_RETRY_MAX_S = float(os.environ.get("MESH_RETRY_MAX_S", "1800"))
