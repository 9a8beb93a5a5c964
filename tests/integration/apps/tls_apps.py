"""Apps for tests/integration/test_tls.py: what the server tells WSGI and ASGI apps about TLS."""
import json

from asgi_util import lifespan


def wsgi(environ, start_response):
    keys = ("wsgi.url_scheme", "HTTPS", "SSL_PROTOCOL", "SSL_CLIENT_S_DN", "SSL_CLIENT_CERT",
            "SERVER_PORT", "PATH_INFO")
    body = json.dumps({k: environ.get(k) for k in keys}).encode()
    if environ["PATH_INFO"] == "/big":
        body = b"x" * 1000000
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        tls = scope.get("extensions", {}).get("tls")
        await send({"type": "websocket.send",
                    "text": json.dumps({"scheme": scope["scheme"], "tls": tls})})
        while True:
            m = await receive()
            if m["type"] == "websocket.disconnect":
                return
            await send({"type": "websocket.send", "text": m.get("text"), "bytes": m.get("bytes")})
    while (await receive()).get("more_body"):
        pass
    body = json.dumps({"scheme": scope["scheme"],
                       "tls": scope.get("extensions", {}).get("tls")}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
