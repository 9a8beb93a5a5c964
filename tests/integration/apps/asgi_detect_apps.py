"""Callables for worker_class = auto detection (tests/integration/test_asgi.py)."""
import functools


async def _asgi(scope, receive, send, tag=b"asgi"):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": tag})


async def async_function(scope, receive, send):
    await _asgi(scope, receive, send)


class AsyncCallable:
    async def __call__(self, scope, receive, send):
        await _asgi(scope, receive, send, b"asgi-instance")


async_instance = AsyncCallable()
partial_app = functools.partial(_asgi, tag=b"asgi-partial")


def wsgi_function(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]


class WsgiCallable:
    def __call__(self, environ, start_response):
        return wsgi_function(environ, start_response)


wsgi_instance = WsgiCallable()
