"""Apps for tests/integration/test_cli.py: what a gunicorn or uvicorn user starts with no flags
beyond the app (worker_class auto), and app factories."""
import os

from asgi_util import lifespan


def wsgi_app(environ, start_response):
    body = ("wsgi upgrade=%s" % environ.get("HTTP_UPGRADE", "")).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def asgi_app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] == "websocket":
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": "echo " + (m.get("text") or "")})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"asgi"})


def _tagged(tag):
    def app(environ, start_response):
        body = tag.encode()
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]
    return app


def create_app(name="factory", times=1):
    """A factory: module:create_app() or --factory."""
    return _tagged("%s x%d pid-env=%s" % (name, times, os.environ.get("CLI_APPS_TAG", "")))


def create_asgi_app():
    return asgi_app


def bad_factory():
    return None


def raising_factory():
    raise RuntimeError("the factory failed on purpose")


class Holder:
    @staticmethod
    def make():
        return _tagged("nested")


def venv_app(environ, start_response):
    """Answers where venv_marker (a module only the test's virtualenv has) came from."""
    import sys

    import venv_marker
    body = ("%s %s" % (venv_marker.VALUE, sys.path.index(venv_marker.SITE))).encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
