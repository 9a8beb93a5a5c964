"""Apps for tests/integration/test_proxy.py and test_backpressure.py: each answers with what it
was told about the client (JSON); /slow?s=SECONDS sleeps first (a slow app under load), and
the ASGI /block?s=SECONDS blocks its event loop that long."""
import asyncio
import json
import time
from urllib.parse import parse_qs

from asgi_util import lifespan


def _secs(qs):
    return float(parse_qs(qs).get("s", ["0"])[-1])


def wsgi(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(_secs(environ.get("QUERY_STRING", "")))
    keys = ("REMOTE_ADDR", "REMOTE_PORT", "wsgi.url_scheme", "HTTP_HOST", "SERVER_NAME",
            "SERVER_PORT", "HTTPS", "HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "SERVER_PROTOCOL")
    body = json.dumps({k: environ.get(k) for k in keys}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def _view(scope):
    headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in scope["headers"]}
    return {"client": list(scope["client"]) if scope.get("client") else None,
            "server": list(scope["server"]) if scope.get("server") else None,
            "scheme": scope["scheme"], "host": headers.get("host"),
            "x_forwarded_for": headers.get("x-forwarded-for"),
            "http_version": scope.get("http_version")}


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(_view(scope))})
        await send({"type": "websocket.close", "code": 1000})
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(_secs(scope["query_string"].decode()))
    elif scope["path"] == "/block":  # holds the event loop: later requests wait for the worker
        time.sleep(_secs(scope["query_string"].decode()))
    body = json.dumps(_view(scope)).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
