{%- set a = cookiecutter | answers -%}
"""Django settings of this project (its name is PROJECT_NAME below).

Every value comes from the environment with a local-friendly default. Values are read from the file named
by DJANGO_ENV_FILE (relative to the project root) or else from <project root>/.env; real environment
variables win.
"""

import os
import socket
from pathlib import Path
from urllib.parse import quote

import environ
from django.core.exceptions import ImproperlyConfigured

from apps.mqtt_service import topology
from config.secret_key import check_production_secret_key

SRC_DIR = Path(__file__).resolve().parent.parent
PROJECT_ROOT = SRC_DIR.parent
PROJECT_SLUG = {{ a.project_slug | py }}
PROJECT_NAME = {{ a.project_name | py }}

env = environ.Env()

_env_file_name = os.environ.get("DJANGO_ENV_FILE", "")
if _env_file_name:
    ENV_FILE = PROJECT_ROOT / _env_file_name
    if not ENV_FILE.is_file():
        raise ImproperlyConfigured(f"DJANGO_ENV_FILE points at {ENV_FILE}, which does not exist.")
else:
    ENV_FILE = PROJECT_ROOT / ".env"
if ENV_FILE.is_file():
    # overwrite=False: a variable already in the real environment keeps its value.
    env.read_env(ENV_FILE, overwrite=False)

# --- Core -------------------------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not DEBUG:
    check_production_secret_key(SECRET_KEY, PROJECT_ROOT / ".env.example")
elif not SECRET_KEY:
    # Development only: a per-process key, so nothing secret is ever written in the code.
    SECRET_KEY = "dev-only-" + os.urandom(32).hex()

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",  # first: its runserver serves ASGI (HTTP and WebSocket) in development
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_celery_beat",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "apps.main",
    "apps.devices",
    "apps.commands",
    "apps.mqtt_service",
    "apps.simulator",
    "apps.api",
    "apps.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
                "apps.dashboard.context_processors.project",
            ],
        },
    },
]

# --- Database (PostgreSQL through psycopg 3) ----------------------------------------------------------------
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": env.str("POSTGRES_DB", default=PROJECT_SLUG),
        "USER": env.str("POSTGRES_USER", default=PROJECT_SLUG),
        "PASSWORD": env.str("POSTGRES_PASSWORD", default=""),
        "HOST": env.str("POSTGRES_HOST", default="127.0.0.1"),
        "PORT": env.int("POSTGRES_PORT", default=5432),
        # Under ASGI each request may run in a fresh thread; persistent connections are opt-in.
        "CONN_MAX_AGE": env.int("POSTGRES_CONN_MAX_AGE", default=0),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"connect_timeout": env.int("POSTGRES_CONNECT_TIMEOUT", default=5)},
    }
}
# The MQTT handler's batch statements are prepared once per connection (apps/mqtt_service/bulk_sql.py); False
# behind a pooler in transaction mode that cannot keep prepared statements.
POSTGRES_PREPARE_BATCH_STATEMENTS = env.bool("POSTGRES_PREPARE_BATCH_STATEMENTS", default=True)

# --- Redis: one server, one logical database per job --------------------------------------------------------
REDIS_HOST = env.str("REDIS_HOST", default="127.0.0.1")
REDIS_PORT = env.int("REDIS_PORT", default=6379)
REDIS_PASSWORD = env.str("REDIS_PASSWORD", default="")


def redis_url(db: int) -> str:
    """URL of one Redis logical database, with the password (URL-quoted) when one is set."""
    auth = f":{quote(REDIS_PASSWORD, safe='')}@" if REDIS_PASSWORD else ""
    return f"redis://{auth}{REDIS_HOST}:{REDIS_PORT}/{db}"


REDIS_CACHE_URL = redis_url(0)
REDIS_CELERY_BROKER_URL = redis_url(1)
REDIS_CELERY_RESULTS_URL = redis_url(2)
REDIS_CHANNEL_LAYER_URL = redis_url(3)
REDIS_PUBLISH_QUEUE_URL = redis_url(4)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_CACHE_URL,
        "KEY_PREFIX": PROJECT_SLUG,
    }
}

CHANNEL_LAYERS = {
    "default": {
        # channels_redis whose callers wait for a free Redis connection (a burst of handshakes joining their
        # groups at once) and whose receive stops when a socket closes; see websocket.channel_layer.
        "BACKEND": "websocket.channel_layer.WaitingPoolChannelLayer",
        "CONFIG": {
            # The layer waits on Redis with blocking pops of up to 5 s; redis-py 8's default client read
            # timeout is also 5 s and would tear idle sockets down, so the read timeout must be longer.
            "hosts": [{"address": REDIS_CHANNEL_LAYER_URL, "socket_timeout": 30}],
            # A distinct prefix keeps two projects (or two test runs) on one Redis apart.
            "prefix": env.str("CHANNEL_LAYER_PREFIX", default=f"{PROJECT_SLUG}:ws:"),
            # Messages a socket's channel may hold before group_send silently drops more (default 100).
            # The MQTT handler sends batches, so this covers bursts of tens of thousands of events.
            "capacity": 1000,
            # Redis connections per process, and the seconds a caller waits for one before its call fails.
            "max_connections": env.int("CHANNEL_LAYER_MAX_CONNECTIONS", default=100),
            "pool_timeout": env.float("CHANNEL_LAYER_POOL_TIMEOUT", default=10.0),
        },
    }
}

# --- Celery -------------------------------------------------------------------------------------------------
CELERY_BROKER_URL = REDIS_CELERY_BROKER_URL
CELERY_RESULT_BACKEND = REDIS_CELERY_RESULTS_URL
# Every key Celery writes (queues, bindings, unacked messages, results) starts with the project slug: two
# projects on one Redis would otherwise share the "celery" queue and run each other's tasks.
REDIS_CELERY_KEY_PREFIX = f"{PROJECT_SLUG}:celery:"
CELERY_BROKER_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_CELERY_KEY_PREFIX}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": REDIS_CELERY_KEY_PREFIX}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# --- MQTT ---------------------------------------------------------------------------------------------------
MQTT_ROOT_USERNAME = env.str("MQTT_ROOT_USERNAME", default="admin")
# The services' broker usernames were answered when the project was generated: acl.conf grants exactly those
# names, so they are not read from the environment (a renamed user would lose every permission).
for _name, _answered in (
    ("MQTT_HANDLER_USERNAME", topology.HANDLER_USERNAME),
    ("MQTT_PUBLISHER_USERNAME", topology.PUBLISHER_USERNAME),
):
    if env.str(_name, default="") not in ("", _answered):
        raise ImproperlyConfigured(
            f"{_name} is fixed to {_answered!r} by the template answers (acl.conf grants that name): remove "
            f"{_name} from the environment, or change the answer and regenerate (cruft update)."
        )
MQTT = {
    "host": env.str("MQTT_BROKER_HOST", default="127.0.0.1"),
    "port": env.int("MQTT_BROKER_PORT", default=1883),
    # A service logs in with its username only when its password is set (a broker without authentication,
    # such as a local Mosquitto, takes anonymous clients).
    "handler_username": topology.HANDLER_USERNAME,
    "handler_password": env.str("MQTT_HANDLER_PASSWORD", default=""),
    "publisher_username": topology.PUBLISHER_USERNAME,
    "publisher_password": env.str("MQTT_PUBLISHER_PASSWORD", default=""),
    # Empty means "derive one per process": <slug>-<role>-<hostname> (see client_id_prefix and hostname).
    "client_id": env.str("MQTT_CLIENT_ID", default=""),
    "client_id_prefix": PROJECT_SLUG,
    "hostname": socket.gethostname(),
    # Redis keys of the MQTT services start with the project slug, so two projects sharing one Redis never
    # take each other's commands or counters. Dead letters go to "<publish_queue>:dead_letter".
    "publish_queue": env.str("MQTT_PUBLISH_QUEUE", default=f"{PROJECT_SLUG}:mqtt:publish_queue"),
    "metrics_key_prefix": f"{PROJECT_SLUG}:mqtt:metrics:",
    # Where the broker publishes client connected/disconnected events (EMQX: $SYS/brokers); the handler
    # subscribes to <prefix>/+/clients/+/connected|disconnected for device presence.
    # Read from os.environ (the .env file is loaded into it): django-environ would take a value starting with
    # "$" for a reference to another variable.
    "presence_event_prefix": os.environ.get("MQTT_PRESENCE_EVENT_PREFIX", "$SYS/brokers").rstrip("/"),
}
if not MQTT["presence_event_prefix"] or any(c in MQTT["presence_event_prefix"] for c in "+#\x00"):
    raise ImproperlyConfigured("MQTT_PRESENCE_EVENT_PREFIX must be a topic prefix without wildcards.")

HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", default=2.0)

# --- Fleet --------------------------------------------------------------------------------------------------
# A device silent for longer than this (seconds) is marked offline by the inactivity sweep; a device's own
# inactivity_timeout overrides it; 0 turns the sweep off for devices without their own.
DEVICE_INACTIVITY_TIMEOUT = env.int("DEVICE_INACTIVITY_TIMEOUT", default=300)
# How often (seconds) the sweep runs: a silent device goes offline at most this long after its timeout.
DEVICE_INACTIVITY_SWEEP_INTERVAL = env.int("DEVICE_INACTIVITY_SWEEP_INTERVAL", default=30)
# Days of telemetry history (DeviceEvent) and presence history kept; older rows are deleted in small batches.
TELEMETRY_RETENTION_DAYS = env.int("TELEMETRY_RETENTION_DAYS", default=30)
# Seconds a device has to answer a command when send_command() is not given a timeout.
COMMAND_DEFAULT_TIMEOUT = env.int("COMMAND_DEFAULT_TIMEOUT", default=30)
# Seconds between two runs of the command deadline sweep (apps.commands.tasks): how late past its deadline
# a command unanswered may still show as sent or delivered before it is timed out.
COMMAND_SWEEP_INTERVAL = 5.0

# Periodic tasks. django-celery-beat's DatabaseScheduler writes these entries to its tables when beat starts
# (and keeps them up to date); more can be added in the admin.
CELERY_BEAT_SCHEDULE = {
    "commands.sweep_command_deadlines": {
        "task": "apps.commands.tasks.sweep_command_deadlines",
        "schedule": COMMAND_SWEEP_INTERVAL,
        # A sweep still waiting when the next is due is dropped, not piled up behind a stopped worker.
        "options": {"expires": COMMAND_SWEEP_INTERVAL},
    },
    # Hourly, so each run deletes about an hour of history: short runs, no backlog.
    "devices.prune_telemetry_history": {
        "task": "apps.devices.tasks.prune_telemetry_history",
        "schedule": 3600.0,
    },
    "devices.sweep_inactive_devices": {
        "task": "apps.devices.tasks.sweep_inactive_devices",
        "schedule": float(DEVICE_INACTIVITY_SWEEP_INTERVAL),
        "options": {"expires": float(DEVICE_INACTIVITY_SWEEP_INTERVAL)},
    },
}

# --- Auth ---------------------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:fleet"
LOGOUT_REDIRECT_URL = "dashboard:login"

# --- JSON API (Django REST framework, /api/) ----------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: a request without credentials is answered 401 with `WWW-Authenticate: Token`. A session
    # (the browser) must send the CSRF token with every unsafe method.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": f"{PROJECT_NAME} API",
    "DESCRIPTION": "Devices, their presence and telemetry history, and commands sent to them. Authenticate "
    "with a session (the browser; unsafe methods need the CSRF token) or `Authorization: Token <key>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's JavaScript and CSS come from drf-spectacular-sidecar, served with the static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Internationalisation -----------------------------------------------------------------------------------
LANGUAGE_CODE = env.str("DJANGO_LANGUAGE_CODE", default={{ a.language_code | py }})
TIME_ZONE = env.str("DJANGO_TIME_ZONE", default={{ a.timezone | py }})
USE_I18N = True
USE_TZ = True
CELERY_TIMEZONE = TIME_ZONE

# --- Static files (served by WhiteNoise, also under ASGI) ---------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = PROJECT_ROOT / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# A file missing from the manifest (collectstatic not run yet) is served unhashed instead of a 500.
WHITENOISE_MANIFEST_STRICT = False

# --- Security (production defaults switch on with DJANGO_DEBUG=False; each can be overridden) ---------------
_production = not DEBUG
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=_production)
# The container health check talks plain HTTP to the app itself.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000 if _production else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=_production)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=_production)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=_production)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Trust X-Forwarded-Proto only behind a TLS-terminating proxy that always sets it.
if env.bool("DJANGO_SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Logging: everything to stdout, where containers and process managers collect it ------------------------
LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"},
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"},
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stdout"], "level": LOG_LEVEL, "propagate": False},
        "django.db.backends": {"level": "WARNING"},
    },
}
