"""WSGI entry point:  hornbeam-uring djsite.wsgi:application --pythonpath examples/django_app"""
import os
import sys

try:  # Debian's Django 3.2 imports `cgi`, removed in Python 3.13
    import cgi  # noqa: F401
except ImportError:
    sys.path.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "compat"))

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djsite.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
