"""WSGI entry point of perf/bench.py's Django app (hornbeam-uring, gunicorn, uWSGI)."""
import os
import sys

try:  # Debian's Django 3.2 imports `cgi`, removed in Python 3.13: use the example's shim
    import cgi  # noqa: F401
except ImportError:
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                 "..", "..", "..", "examples", "django_app", "compat"))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djbench.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
