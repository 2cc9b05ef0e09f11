"""llmsite settings: every knob comes from the environment (or an optional `.env`), documented in `.env.example`."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from llmsite.devices import DEVICES
from llmsite.durations import BadDuration, parse_duration, parse_fallbacks

# Must be set before anything imports transformers / huggingface_hub: weights never download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
_env_file = Path(os.environ.get("ENV_FILE", BASE_DIR / ".env"))
if _env_file.is_file():
    env.read_env(str(_env_file))

ENVIRONMENT = env.str("ENVIRONMENT", default="development")
if ENVIRONMENT not in ("development", "production"):
    raise ImproperlyConfigured(f"ENVIRONMENT must be 'development' or 'production', not {ENVIRONMENT!r}")
PRODUCTION = ENVIRONMENT == "production"

DATA_DIR = Path(env.str("DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
MODELS_DIR = Path(env.str("MODELS_DIR", default=str(DATA_DIR / "models"))).resolve()
EMBEDDINGS_DIR = Path(env.str("EMBEDDINGS_DIR", default=str(DATA_DIR / "embeddings"))).resolve()


def _persistent_secret(name: str, purpose: str) -> str:
    """The secret from the environment; in development, generated once and kept under DATA_DIR."""
    key = env.str(name, default="")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured(f"ENVIRONMENT=production needs {name} ({purpose})")
    # Development: generate one and keep it, so sessions and tokens survive restarts.
    path = DATA_DIR / name.lower()
    if not path.is_file():
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(64))
    return path.read_text().strip()


SECRET_KEY = _persistent_secret("SECRET_KEY", "a real key of 50+ random characters")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",  # first, so `runserver` is ASGI too
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_ratelimit",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Background jobs: `jobs` before django_tasks_db, so its `db_worker` (heartbeats, reaping, periodic jobs) wins.
    "jobs",
    "django_tasks",
    "django_tasks_db",
    "accounts",
    "conversations",
    "inference",
    "embeddings",
    "feedback",
    "training",
    "evaluation",
    "usage",
    "dashboard",
    "arena",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "llmsite.staticfiles.AsyncWhiteNoiseMiddleware",  # WhiteNoise, without a thread hop per request
    # After WhiteNoise (static files are not recorded), before everything that can answer early.
    "dashboard.middleware.MetricsMiddleware",
    # While the server shuts down, new requests get 503 here (after the metrics: refusals are counted too).
    "llmsite.shutdown.DrainMiddleware",
    # Content-Security-Policy on every response (CONTENT_SECURITY_POLICY below; pages may tighten it).
    "csp.middleware.CSPMiddleware",
    "llmsite.errors.JsonErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "llmsite.urls"
WSGI_APPLICATION = "llmsite.wsgi.application"
ASGI_APPLICATION = "llmsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# --- Database -------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions + a busy timeout avoid "database is locked" when a deferred
    # transaction upgrades to a write; WAL lets readers run beside the one writer.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Caches -------------------------------------------------------------------------------
CACHE_URL = env.str("CACHE_URL", default="locmemcache://llmsite-default")
RESPONSE_CACHE_TTL = env.int("RESPONSE_CACHE_TTL", default=3600)
RESPONSE_CACHE_MAX_ENTRIES = env.int("RESPONSE_CACHE_MAX_ENTRIES", default=10_000)
CACHES = {
    "default": env.cache_url_config(CACHE_URL),
    # Model answers live in their own alias so clearing them never drops rate-limit counters.
    "responses": env.cache_url_config(
        env.str("RESPONSE_CACHE_URL", default=CACHE_URL.replace("llmsite-default", "llmsite-responses"))
    ),
}
# Every key of the caches and the channel layer starts with it: sites (or test servers) sharing one Redis
# keep apart. Workers of one site must use the same prefix.
CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="")
for alias in CACHES.values():
    alias["KEY_PREFIX"] = CACHE_KEY_PREFIX
CACHES["responses"]["TIMEOUT"] = RESPONSE_CACHE_TTL
CACHES["responses"].setdefault("OPTIONS", {})["MAX_ENTRIES"] = RESPONSE_CACHE_MAX_ENTRIES
if CACHES["default"]["BACKEND"].endswith("RedisCache") and "django_redis" not in CACHES["default"]["BACKEND"]:
    # django-ratelimit recognises django-redis as a shared, atomic cache.
    for alias in CACHES.values():
        if alias["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
            alias["BACKEND"] = "django_redis.cache.RedisCache"
RATELIMIT_USE_CACHE = "default"
SILENCED_SYSTEM_CHECKS = []
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache":
    # One daphne process with local memory is a supported setup: its counters are exact there.
    # Several workers must point CACHE_URL at Redis, which these checks would then not flag.
    SILENCED_SYSTEM_CHECKS += ["django_ratelimit.E003", "django_ratelimit.W001"]

# --- Channels -----------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # redis-py 8 times out socket reads after 5 s by default, and the layer's receive is a blocking
            # BZPOPMIN of up to 5 s: every idle WebSocket consumer died with "Timeout reading from". A read
            # timeout above the pop's keeps a silently dropped connection from hanging forever.
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": f"{CACHE_KEY_PREFIX}asgi",
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# --- Auth and security --------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = PRODUCTION
CSRF_COOKIE_SECURE = PRODUCTION
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# A strict Content-Security-Policy (django-csp) for every page, the admin and the API docs included:
# scripts and styles only from this site's own files (no inline script, no CDN), fetch and WebSocket
# only to this origin ('self' covers ws:/wss: to the same host). The chat pages add Trusted Types
# (llmsite/views.py); the Swagger UI page allows its inline style block (llmsite/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Probes (Docker HEALTHCHECK, load balancers) speak plain HTTP to the container.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


# Access tokens cannot be revoked (the blacklist covers refresh tokens only): keep them short.
JWT_ACCESS_TOKEN_MINUTES = env.int("JWT_ACCESS_TOKEN_MINUTES", default=10)
if not 1 <= JWT_ACCESS_TOKEN_MINUTES <= 15:
    raise ImproperlyConfigured(f"JWT_ACCESS_TOKEN_MINUTES must be 1 to 15, not {JWT_ACCESS_TOKEN_MINUTES}")
JWT_REFRESH_TOKEN_DAYS = env.int("JWT_REFRESH_TOKEN_DAYS", default=7)
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=JWT_ACCESS_TOKEN_MINUTES),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=JWT_REFRESH_TOKEN_DAYS),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "ALGORITHM": "HS256",
    # Separate from SECRET_KEY: rotating one never invalidates what the other signs, and a leak
    # of one does not let anyone mint the other's tokens.
    "SIGNING_KEY": _persistent_secret("JWT_SIGNING_KEY", "50+ random characters, different from SECRET_KEY"),
    "AUTH_HEADER_TYPES": ("Bearer",),
    # A password change invalidates the access tokens issued before it.
    "CHECK_REVOKE_TOKEN": True,
}

# Abuse protection of the endpoints that are not metered (django-ratelimit, counted in the
# `default` cache, per user or client IP). Completions and embeddings are governed by the usage
# limits below instead (exact, shared through the database).
RATELIMIT_FEEDBACK = env.str("RATELIMIT_FEEDBACK", default="60/m")
# Login (token and session) and registration attempts, per client IP and per username.
RATELIMIT_LOGIN = env.str("RATELIMIT_LOGIN", default="10/m")
# Behind a proxy, the request.META key holding the client address (e.g. HTTP_X_REAL_IP).
RATELIMIT_IP_META_KEY = env.str("RATELIMIT_IP_META_KEY", default="") or None

# --- Usage: the ledger, limits and prices (docs/usage.md) ----------------------------------
USAGE_ENABLED = env.bool("USAGE_ENABLED", default=True)
# Site-wide default limits per user (unset: unlimited); a user's own limits in the admin replace them.
USAGE_DEFAULT_REQUESTS_PER_MINUTE = env.int("USAGE_DEFAULT_REQUESTS_PER_MINUTE", default=None)
USAGE_DEFAULT_TOKENS_PER_MINUTE = env.int("USAGE_DEFAULT_TOKENS_PER_MINUTE", default=None)
USAGE_DEFAULT_TOKENS_PER_DAY = env.int("USAGE_DEFAULT_TOKENS_PER_DAY", default=None)
USAGE_DEFAULT_TOKENS_PER_MONTH = env.int("USAGE_DEFAULT_TOKENS_PER_MONTH", default=None)
USAGE_DEFAULT_SPEND_PER_DAY = env.float("USAGE_DEFAULT_SPEND_PER_DAY", default=None)
USAGE_DEFAULT_SPEND_PER_MONTH = env.float("USAGE_DEFAULT_SPEND_PER_MONTH", default=None)
# Staff are not held to the site defaults (their own limits, if set, still apply).
USAGE_STAFF_EXEMPT_FROM_DEFAULTS = env.bool("USAGE_STAFF_EXEMPT_FROM_DEFAULTS", default=True)
# Prices per million tokens, {"model id": [input, output]}; the admin's price table overrides them.
# Models not priced anywhere cost 0 (local models, by default).
USAGE_PRICES = env.json("USAGE_PRICES", default={})
USAGE_CURRENCY = env.str("USAGE_CURRENCY", default="USD")

# --- REST API -----------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so an unauthenticated call gets 401 with `WWW-Authenticate: Bearer`, not 403.
        "accounts.authentication.BearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.IsAuthenticatedInScope"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "llmsite.schema.AutoSchema",
    "EXCEPTION_HANDLER": "llmsite.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "llmsite API",
    "DESCRIPTION": "Self-hosted LLM serving: inference, streaming, embeddings, feedback and training.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Chat roles appear in the native and the OpenAI-compatible API with different choices.
    "ENUM_NAME_OVERRIDES": {
        "OpenAIRoleEnum": "inference.openai_apis.OPENAI_ROLES",
        "ChatRoleEnum": "inference.providers.base.ROLES",
        "StoredMessageRoleEnum": "conversations.models.Message.Role",
        "SearchModeEnum": "embeddings.services.validation.SEARCH_MODES",
    },
}

# --- Inference and embeddings ---------------------------------------------------------------
DEVICE = env.str("DEVICE", default="auto")
if DEVICE not in DEVICES:
    raise ImproperlyConfigured(f"DEVICE must be {', '.join(DEVICES[:-1])} or {DEVICES[-1]}, not {DEVICE!r}")
LLM_PROVIDER = env.str("LLM_PROVIDER", default="hf")
LLM_MODEL = env.str("LLM_MODEL", default="SmolLM2-135M-Instruct")
LLM_MAX_NEW_TOKENS = env.int("LLM_MAX_NEW_TOKENS", default=512)
# inference: the default when a request names no max_new_tokens (a ProviderConfig may override it).
LLM_DEFAULT_MAX_NEW_TOKENS = env.int("LLM_DEFAULT_MAX_NEW_TOKENS", default=256)
# inference: prompts (all message contents together) longer than this many characters are refused
# before tokenising; the context window check then counts tokens.
LLM_MAX_PROMPT_CHARS = env.int("LLM_MAX_PROMPT_CHARS", default=100_000)
# inference: float32 on CPU by default (docs/performance.md#float32-vs-bfloat16-on-cpus); auto picks bf16/fp16 on GPUs.
LLM_DTYPE = env.str("LLM_DTYPE", default="auto")
# inference: the local engine. auto is OpenVINO GenAI on the CPU where its wheel imports and the model has
# an OpenVINO export (manage.py prepare_models makes one), else transformers (GPUs, and the fallback; the
# reason is in /readyz, /api/v1/providers and the log). See inference/providers/openvino.py.
LLM_ENGINE = env.str("LLM_ENGINE", default="auto")
if LLM_ENGINE not in ("auto", "openvino", "transformers"):
    raise ImproperlyConfigured(f"LLM_ENGINE must be auto, openvino or transformers, not {LLM_ENGINE!r}")
# inference: OpenVINO weight precision: fp32 is exact to transformers float32; int8/int4 are faster and
# approximate (docs/performance.md). prepare_models exports the precisions in LLM_EXPORT_PRECISIONS.
LLM_PRECISION = env.str("LLM_PRECISION", default="fp32")
LLM_EXPORT_PRECISIONS = env.list("LLM_EXPORT_PRECISIONS", default=[LLM_PRECISION])
if LLM_PRECISION not in ("fp32", "int8", "int4") or not set(LLM_EXPORT_PRECISIONS) <= {"fp32", "int8", "int4"}:
    raise ImproperlyConfigured("LLM_PRECISION and LLM_EXPORT_PRECISIONS take fp32, int8 or int4")
# training: export a fine-tuned model to OpenVINO (LLM_PRECISION) when its run finishes, so it serves on either engine.
LLM_EXPORT_AFTER_TRAINING = env.bool("LLM_EXPORT_AFTER_TRAINING", default=True)
# inference: the OpenVINO engine's KV cache bound in GB (whole GB, at least 1): how many tokens all
# running requests together may hold (~46 KB a token for SmolLM2-135M in f32).
LLM_KV_CACHE_GB = env.int("LLM_KV_CACHE_GB", default=1)
# inference: worker threads of the local provider for streamed generations.
LLM_WORKERS = env.int("LLM_WORKERS", default=4)
# inference: continuous batching of concurrent requests on the local model (one scheduler thread
# owns it); off generates one request at a time per worker thread. See inference/providers/batching.py.
LLM_BATCHING = env.bool("LLM_BATCHING", default=True)
# inference: requests decoding together; tokens one forward pass may take (joining prompts + running
# rows); requests waiting for a place before new ones get 503.
LLM_MAX_BATCH_SIZE = env.int("LLM_MAX_BATCH_SIZE", default=16)
LLM_MAX_BATCHED_TOKENS = env.int("LLM_MAX_BATCHED_TOKENS", default=2048)
LLM_MAX_QUEUE = env.int("LLM_MAX_QUEUE", default=64)
if LLM_MAX_BATCH_SIZE < 1 or LLM_MAX_BATCHED_TOKENS < 1 or LLM_MAX_QUEUE < 0:
    raise ImproperlyConfigured("LLM_MAX_BATCH_SIZE, LLM_MAX_BATCHED_TOKENS must be >= 1; LLM_MAX_QUEUE >= 0")
# inference: where a local model runs. process (default): in a runner process of its own, so the web
# threads never wait for the engine's GIL and a crash does not take the site down (inference/runners);
# inline: in the web process (tests that drive the scheduler, debugging).
LLM_RUNNER = env.str("LLM_RUNNER", default="process")
if LLM_RUNNER not in ("process", "inline"):
    raise ImproperlyConfigured(f"LLM_RUNNER must be process or inline, not {LLM_RUNNER!r}")
# inference: how long a runner may take to load its model before the load counts as failed.
LLM_RUNNER_START_TIMEOUT = env.float("LLM_RUNNER_START_TIMEOUT", default=300.0)
# inference: niceness added to runner processes (0-19). Generation uses every core it gets; a lower
# priority for it keeps the web process (health probes, cache hits, stream frames) answering at once.
LLM_RUNNER_NICE = env.int("LLM_RUNNER_NICE", default=10)
if not 0 <= LLM_RUNNER_NICE <= 19:
    raise ImproperlyConfigured(f"LLM_RUNNER_NICE must be from 0 to 19, not {LLM_RUNNER_NICE}")
# inference: the model pool (inference/engine.py). Models other than the default unload after
# LLM_KEEP_ALIVE idle (Ollama's format: 300, "5m", "1h"; negative keeps them; 0 unloads at once); before a
# local model loads, least recently used idle ones unload while more than LLM_MAX_LOADED_MODELS would be
# loaded or their runners' memory would pass LLM_MEMORY_BUDGET_MB (0: no budget). A load waits up to
# LLM_LOAD_WAIT_SECONDS for a busy model to become free before it answers 503.
# inference: fallbacks, tried in order when a model is unavailable, overloaded or fails before its first
# token: "openai/gpt-4o-mini=SmolLM2-135M-Instruct;anthropic/claude-haiku-4-5=openai/gpt-4o-mini,SmolLM2-135M-Instruct"
try:
    LLM_KEEP_ALIVE = parse_duration(env.str("LLM_KEEP_ALIVE", default="5m"), "LLM_KEEP_ALIVE")
    LLM_FALLBACKS = parse_fallbacks(env.str("LLM_FALLBACKS", default=""))
except BadDuration as exc:
    raise ImproperlyConfigured(str(exc)) from exc
LLM_MAX_LOADED_MODELS = env.int("LLM_MAX_LOADED_MODELS", default=3)
LLM_MEMORY_BUDGET_MB = env.int("LLM_MEMORY_BUDGET_MB", default=0)
LLM_LOAD_WAIT_SECONDS = env.float("LLM_LOAD_WAIT_SECONDS", default=60.0)
# inference: auto loads the model in server processes only (daphne, uvicorn, runserver); always/never.
LLM_LOAD_AT_START = env.str("LLM_LOAD_AT_START", default="auto")
# inference: how long a starting server waits for the model before it serves anyway (/readyz 503 meanwhile).
LLM_STARTUP_WAIT_SECONDS = env.float("LLM_STARTUP_WAIT_SECONDS", default=120.0)
# inference: how often a server checks the active ProviderConfig for changes (reload_model, other workers).
LLM_CONFIG_CHECK_SECONDS = env.float("LLM_CONFIG_CHECK_SECONDS", default=1.0)
EMBEDDING_MODEL = env.str("EMBEDDING_MODEL", default="all-MiniLM-L6-v2")
# inference: passages retrieved for an answer grounded in a collection when the request names no top_k.
RAG_TOP_K = env.int("RAG_TOP_K", default=4)
# embeddings: FAISS index type (flat = exact; hnsw = approximate, for large collections) and HNSW knobs.
EMBEDDINGS_INDEX_TYPE = env.str("EMBEDDINGS_INDEX_TYPE", default="flat")
if EMBEDDINGS_INDEX_TYPE not in ("flat", "hnsw"):
    raise ImproperlyConfigured(f"EMBEDDINGS_INDEX_TYPE must be flat or hnsw, not {EMBEDDINGS_INDEX_TYPE!r}")
EMBEDDINGS_HNSW_M = env.int("EMBEDDINGS_HNSW_M", default=32)
EMBEDDINGS_HNSW_EF_CONSTRUCTION = env.int("EMBEDDINGS_HNSW_EF_CONSTRUCTION", default=80)
EMBEDDINGS_HNSW_EF_SEARCH = env.int("EMBEDDINGS_HNSW_EF_SEARCH", default=64)
# embeddings: OpenMP threads FAISS may use (1: each request searches on its own thread; see embeddings/store.py).
EMBEDDINGS_FAISS_THREADS = env.int("EMBEDDINGS_FAISS_THREADS", default=1)
# embeddings: long texts are split into chunks of this many characters, overlapping by this many.
EMBEDDINGS_CHUNK_CHARS = env.int("EMBEDDINGS_CHUNK_CHARS", default=800)
EMBEDDINGS_CHUNK_OVERLAP = env.int("EMBEDDINGS_CHUNK_OVERLAP", default=100)
if not 0 <= EMBEDDINGS_CHUNK_OVERLAP < EMBEDDINGS_CHUNK_CHARS:
    raise ImproperlyConfigured("EMBEDDINGS_CHUNK_OVERLAP must be at least 0 and less than EMBEDDINGS_CHUNK_CHARS")
# embeddings: request limits (texts per request, characters per text, bytes of metadata JSON per document).
EMBEDDINGS_MAX_BATCH = env.int("EMBEDDINGS_MAX_BATCH", default=64)
EMBEDDINGS_MAX_TEXT_CHARS = env.int("EMBEDDINGS_MAX_TEXT_CHARS", default=100_000)
EMBEDDINGS_MAX_METADATA_BYTES = env.int("EMBEDDINGS_MAX_METADATA_BYTES", default=10_000)
# embeddings: uploaded files (POST /api/v1/embed/files): bytes per file, pages per PDF, characters of extracted
# text; their chunks hold at most EMBEDDINGS_CHUNK_TOKENS encoder tokens (capped at the encoder's maximum),
# a long paragraph's pieces overlapping by EMBEDDINGS_CHUNK_OVERLAP_TOKENS.
EMBEDDINGS_MAX_FILE_BYTES = env.int("EMBEDDINGS_MAX_FILE_BYTES", default=20 * 1024 * 1024)
EMBEDDINGS_MAX_FILE_PAGES = env.int("EMBEDDINGS_MAX_FILE_PAGES", default=500)
EMBEDDINGS_MAX_FILE_CHARS = env.int("EMBEDDINGS_MAX_FILE_CHARS", default=2_000_000)
EMBEDDINGS_CHUNK_TOKENS = env.int("EMBEDDINGS_CHUNK_TOKENS", default=200)
EMBEDDINGS_CHUNK_OVERLAP_TOKENS = env.int("EMBEDDINGS_CHUNK_OVERLAP_TOKENS", default=30)
if EMBEDDINGS_CHUNK_TOKENS < 8 or not 0 <= EMBEDDINGS_CHUNK_OVERLAP_TOKENS < EMBEDDINGS_CHUNK_TOKENS:
    raise ImproperlyConfigured(
        "EMBEDDINGS_CHUNK_TOKENS must be at least 8 and EMBEDDINGS_CHUNK_OVERLAP_TOKENS from 0 to less than it"
    )
# embeddings: save the index after every add/delete (else only on `save`, `rebuild_index` and start-up repair).
EMBEDDINGS_AUTOSAVE = env.bool("EMBEDDINGS_AUTOSAVE", default=True)
# embeddings: auto loads the index in server processes at start (daphne, uvicorn, runserver); always/never.
EMBEDDINGS_LOAD_AT_START = env.str("EMBEDDINGS_LOAD_AT_START", default="auto")
# embeddings: how often a server applies the documents other workers added or deleted (seconds; 0: never).
# A change on one worker is found on every other within 2 s at the default (docs/reliability.md).
EMBEDDINGS_SYNC_SECONDS = env.float("EMBEDDINGS_SYNC_SECONDS", default=0.5)
if EMBEDDINGS_SYNC_SECONDS < 0:
    raise ImproperlyConfigured("EMBEDDINGS_SYNC_SECONDS must be 0 (off) or more")
# embeddings: how search and grounded answers rank passages when the request names no mode: vector
# (meaning), keyword (BM25) or hybrid (both, fused by rank; bench/results/retrieval.md chose it).
EMBEDDINGS_SEARCH_MODE = env.str("EMBEDDINGS_SEARCH_MODE", default="hybrid")
if EMBEDDINGS_SEARCH_MODE not in ("vector", "keyword", "hybrid"):
    raise ImproperlyConfigured(
        f"EMBEDDINGS_SEARCH_MODE must be vector, keyword or hybrid, not {EMBEDDINGS_SEARCH_MODE!r}"
    )
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="https://api.anthropic.com")
ANTHROPIC_MODEL = env.str("ANTHROPIC_MODEL", default="claude-sonnet-4-5")
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="https://api.openai.com/v1")
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4o-mini")
# inference: openai, or azure (OPENAI_BASE_URL is the resource endpoint, OPENAI_MODEL the deployment,
# OPENAI_API_VERSION the api-version query, the key goes in the api-key header).
OPENAI_API_TYPE = env.str("OPENAI_API_TYPE", default="openai")
if OPENAI_API_TYPE not in ("openai", "azure"):
    raise ImproperlyConfigured(f"OPENAI_API_TYPE must be openai or azure, not {OPENAI_API_TYPE!r}")
OPENAI_API_VERSION = env.str("OPENAI_API_VERSION", default="2024-10-21")
# inference, remote providers: seconds to connect; seconds of silence allowed between two chunks of an answer.
LLM_REMOTE_CONNECT_TIMEOUT = env.float("LLM_REMOTE_CONNECT_TIMEOUT", default=5.0)
LLM_REMOTE_READ_TIMEOUT = env.float("LLM_REMOTE_READ_TIMEOUT", default=60.0)
# inference, remote providers: retries after connect errors, timeouts, 408, 429 and 5xx (never once text
# has streamed), and the longest single wait; a Retry-After beyond it fails at once.
LLM_REMOTE_MAX_RETRIES = env.int("LLM_REMOTE_MAX_RETRIES", default=2)
LLM_REMOTE_RETRY_MAX_WAIT = env.float("LLM_REMOTE_RETRY_MAX_WAIT", default=20.0)
# inference, replicas (OPENAI_BASE_URL naming several base URLs, comma-separated): a replica that fails is
# out of service for this many seconds, doubling with each failure in a row up to the maximum, then probed.
UPSTREAM_COOLDOWN_SECONDS = env.float("UPSTREAM_COOLDOWN_SECONDS", default=10.0)
UPSTREAM_COOLDOWN_MAX_SECONDS = env.float("UPSTREAM_COOLDOWN_MAX_SECONDS", default=300.0)

# --- Conversations and feedback --------------------------------------------------------------
# conversations: at most this many earlier turns (besides system messages) go with each new one.
CONVERSATION_HISTORY_MAX_MESSAGES = env.int("CONVERSATION_HISTORY_MAX_MESSAGES", default=50)
# feedback: longer comments are refused (400), never cut.
FEEDBACK_COMMENT_MAX_CHARS = env.int("FEEDBACK_COMMENT_MAX_CHARS", default=5000)

# --- Training -------------------------------------------------------------------------------
# training: the model a run fine-tunes when it names none (a packaged model or a folder under MODELS_DIR).
TRAINING_BASE_MODEL = env.str("TRAINING_BASE_MODEL", default="SmolLM2-135M-Instruct")
# training: where runs train (auto: cuda when present, else cpu).
TRAINING_DEVICE = env.str("TRAINING_DEVICE", default="auto")
# training: extra datasets by file name (*.jsonl chat, *.txt/*.md text), beside the shipped ones in training/data/.
TRAINING_DATASETS_DIR = Path(env.str("TRAINING_DATASETS_DIR", default=str(DATA_DIR / "training"))).resolve()
# training: torch threads for `manage.py train` and the job worker's runs (0: torch's default).
TRAINING_THREADS = env.int("TRAINING_THREADS", default=0)
# training: bounds on what one run may ask for (anything beyond is a 400 that names the limit).
TRAINING_MAX_EPOCHS = env.int("TRAINING_MAX_EPOCHS", default=20)
TRAINING_MAX_STEPS = env.int("TRAINING_MAX_STEPS", default=100_000)
TRAINING_MAX_BATCH_SIZE = env.int("TRAINING_MAX_BATCH_SIZE", default=64)
TRAINING_MAX_GRAD_ACCUM = env.int("TRAINING_MAX_GRAD_ACCUM", default=64)
TRAINING_MAX_LEARNING_RATE = env.float("TRAINING_MAX_LEARNING_RATE", default=1e-2)
TRAINING_MAX_LENGTH = env.int("TRAINING_MAX_LENGTH", default=2048)
TRAINING_MAX_EXAMPLES = env.int("TRAINING_MAX_EXAMPLES", default=100_000)
TRAINING_MAX_DATASET_BYTES = env.int("TRAINING_MAX_DATASET_BYTES", default=100_000_000)
# training: runs queued or running at once; one more is refused (409).
TRAINING_MAX_ACTIVE_RUNS = env.int("TRAINING_MAX_ACTIVE_RUNS", default=4)
# training: a running run's worker writes a heartbeat this often; a run whose heartbeat is older than
# TRAINING_STALE_SECONDS (its worker died) is marked failed.
TRAINING_HEARTBEAT_SECONDS = env.float("TRAINING_HEARTBEAT_SECONDS", default=5.0)
TRAINING_STALE_SECONDS = env.float("TRAINING_STALE_SECONDS", default=120.0)

# --- Evaluation and promotion ---------------------------------------------------------------
# evaluation: a pool model id that judges answers pairwise (e.g. openai/gpt-4o-mini); empty: no judge.
EVALUATION_JUDGE_MODEL = env.str("EVALUATION_JUDGE_MODEL", default="")
# evaluation: evaluate every succeeded training run's model against the default, with this many questions.
EVALUATION_AFTER_TRAINING = env.bool("EVALUATION_AFTER_TRAINING", default=True)
EVALUATION_AUTO_LIMIT = env.int("EVALUATION_AUTO_LIMIT", default=10)
# evaluation: questions when a request names no limit, and the most one may ask for.
EVALUATION_DEFAULT_LIMIT = env.int("EVALUATION_DEFAULT_LIMIT", default=20)
EVALUATION_MAX_QUESTIONS = env.int("EVALUATION_MAX_QUESTIONS", default=100)
# evaluation: tokens per answer (temperature 0); the question set (empty: evaluation/data/questions.jsonl).
EVALUATION_MAX_NEW_TOKENS = env.int("EVALUATION_MAX_NEW_TOKENS", default=48)
EVALUATION_QUESTIONS = env.str("EVALUATION_QUESTIONS", default="")
# evaluation: where the held-out loss is computed (auto: cuda when present, else cpu).
EVALUATION_DEVICE = env.str("EVALUATION_DEVICE", default="auto")
# evaluation: evaluations queued or running at once; one more is refused (409).
EVALUATION_MAX_ACTIVE = env.int("EVALUATION_MAX_ACTIVE", default=4)
# evaluation: heartbeat of a running evaluation; one silent for EVALUATION_STALE_SECONDS is failed.
EVALUATION_HEARTBEAT_SECONDS = env.float("EVALUATION_HEARTBEAT_SECONDS", default=5.0)
EVALUATION_STALE_SECONDS = env.float("EVALUATION_STALE_SECONDS", default=120.0)

# --- Dashboard and metrics ------------------------------------------------------------------
# dashboard: record every request (route, method, status, latency, user) for /dashboard/ and /metrics.
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
# dashboard: a bearer token a Prometheus scraper may present at /metrics (empty: staff only); 32+ characters.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# dashboard: server processes write request metrics in batches from a background thread every
# METRICS_FLUSH_SECONDS, or as soon as METRICS_FLUSH_BATCH wait; at most METRICS_BUFFER_MAX wait in memory
# (beyond that, new ones are dropped and counted in llmsite_request_metrics_dropped_total).
METRICS_FLUSH_SECONDS = env.float("METRICS_FLUSH_SECONDS", default=5.0)
METRICS_FLUSH_BATCH = env.int("METRICS_FLUSH_BATCH", default=500)
METRICS_BUFFER_MAX = env.int("METRICS_BUFFER_MAX", default=50_000)
# dashboard: request metrics older than this many days are deleted by a job enqueued every
# METRICS_PRUNE_SECONDS (once across all workers; 0: never) and by `manage.py prune_metrics`.
METRICS_RETENTION_DAYS = env.int("METRICS_RETENTION_DAYS", default=30)
METRICS_PRUNE_SECONDS = env.float("METRICS_PRUNE_SECONDS", default=3600.0)

# --- Background jobs (django-tasks, database backend; docs/architecture.md#background-jobs) -----------
# Jobs are rows of the database (django_tasks_db): no broker; on PostgreSQL several workers claim them
# with SELECT ... FOR UPDATE SKIP LOCKED. Queues: `training` (runs and model exports: long) and
# `default` (index rebuilds, pruning: short), so a long run never holds up the short jobs.
TASKS_QUEUES = ["default", "training"]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": TASKS_QUEUES}}
# jobs: who runs the workers. embedded: `python -m llmsite.serve` starts one `manage.py db_worker` child per
# queue and stops it on shutdown (one machine, nothing else to start). external: run `manage.py db_worker
# --queue-name training` and `--queue-name default` processes yourself (several servers, a worker machine).
TASKS_WORKER = env.str("TASKS_WORKER", default="embedded")
if TASKS_WORKER not in ("embedded", "external"):
    raise ImproperlyConfigured(f"TASKS_WORKER must be embedded or external, not {TASKS_WORKER!r}")
# jobs: each worker writes a heartbeat this often; the job of a worker silent for TASKS_STALE_SECONDS
# (or whose process on this host is gone) is marked failed, never left running.
TASKS_HEARTBEAT_SECONDS = env.float("TASKS_HEARTBEAT_SECONDS", default=5.0)
TASKS_STALE_SECONDS = env.float("TASKS_STALE_SECONDS", default=120.0)
# jobs: periodic jobs, task path -> seconds between two runs; the workers enqueue each once per period
# across all of them (a conditional UPDATE on its schedule row). 0 turns one off.
TASKS_PERIODIC = {"dashboard.tasks.prune_request_metrics": METRICS_PRUNE_SECONDS}

# --- Static files (served by WhiteNoise, with DEBUG off too) ----------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise scans it at start-up
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "whitenoise.storage.CompressedStaticFilesStorage"
    },
}
# Development serves straight from the app folders, so a fresh checkout needs no collectstatic.
WHITENOISE_USE_FINDERS = not PRODUCTION

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"level": "ERROR"},
        "daphne": {"level": "WARNING"},
        # faiss announces each SIMD build it tries at INFO; only a failure to load matters.
        "faiss.loader": {"level": "WARNING"},
    },
}

# Readiness checks run by /readyz: name -> dotted path of a callable returning (ok, detail).
READINESS_CHECKS = {
    "database": "llmsite.health.database_check",
    "provider": "inference.health.provider_check",
    "models": "inference.health.models_check",
    "embeddings": "embeddings.health.index_check",
}
# /readyz: a local model with work waiting or running whose engine completed no step for this long (or whose
# runner process has not answered for this long) is not ready. Far above any real step, a long prefill on a
# slow CPU included (inference/health.py).
READINESS_STALL_SECONDS = env.float("READINESS_STALL_SECONDS", default=30.0)
if READINESS_STALL_SECONDS <= 0:
    raise ImproperlyConfigured("READINESS_STALL_SECONDS must be greater than 0")

# Shutdown (python -m llmsite.serve, llmsite/shutdown.py): after SIGTERM new requests get 503 and answers
# already running have this long to finish; those still running then end with an error event.
SHUTDOWN_GRACE_SECONDS = env.float("SHUTDOWN_GRACE_SECONDS", default=30.0)
if SHUTDOWN_GRACE_SECONDS < 0:
    raise ImproperlyConfigured("SHUTDOWN_GRACE_SECONDS must be 0 or more")
