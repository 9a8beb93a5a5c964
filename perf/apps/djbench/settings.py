"""Django settings for perf/bench.py's Django scenarios (no database, DEBUG off)."""
from pathlib import Path

SECRET_KEY = "hornbeam-perf-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["djbench"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "djbench.urls"
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [Path(__file__).resolve().parent.parent / "templates"],
    "APP_DIRS": False,
    "OPTIONS": {"context_processors": []},
}]
DATABASES = {}
USE_I18N = False
USE_TZ = True
TIME_ZONE = "UTC"
APPEND_SLASH = False
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
