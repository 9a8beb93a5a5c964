"""An app module whose import fails (the server must exit non-zero with this traceback)."""


def _helper():
    raise RuntimeError("broken_import-marker: this module cannot be imported")


_helper()


def app(environ, start_response):  # pragma: no cover - never reached
    start_response("200 OK", [])
    return [b""]
