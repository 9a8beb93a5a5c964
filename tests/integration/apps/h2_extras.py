"""Apps for test_h2_extras.py: ASGI trailers, early hints and server push, and the WSGI forms
(environ["hornbeam.early_hint"], environ["hornbeam.push"]). Each answer says what the app saw,
so a test can tell "the server dropped it" from "the app never sent it"."""
import json

from asgi_util import lifespan

CSS = b"body { color: green }\n"
JS = b"console.log('pushed')\n"


def _ext(scope):
    return sorted(scope.get("extensions") or {})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    path = scope["path"]
    headers = [(b"content-type", b"text/plain")]
    if path == "/ext":
        body = json.dumps(_ext(scope)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif path == "/trailers":
        # two body pieces, then trailers in two messages (more_trailers)
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": headers + [(b"trailer", b"x-checksum, x-count")]})
        await send({"type": "http.response.body", "body": b"hello ", "more_body": True})
        await send({"type": "http.response.body", "body": b"world"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")],
                    "more_trailers": True})
        await send({"type": "http.response.trailers", "headers": [(b"x-count", b"2")]})
    elif path == "/trailers-cl":
        # the app set Content-Length: HTTP/1.1 with TE: trailers switches to chunked
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": headers + [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"12345"})
        await send({"type": "http.response.trailers", "headers": [(b"x-done", b"yes")]})
    elif path == "/trailers-undeclared":
        # trailers without trailers: true in the start: the send raises, the app fails: 500
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.trailers", "headers": [(b"x-late", b"1")]})
    elif path == "/bad-hint":
        await send({"type": "http.response.early_hint", "links": [b"</a.css>\r\nx-evil: 1"]})
    elif path == "/hints":
        await send({"type": "http.response.early_hint",
                    "links": [b"</style.css>; rel=preload; as=style",
                              b"</app.js>; rel=preload; as=script"]})
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hinted"})
    elif path == "/push":
        can = "http.response.push" in (scope.get("extensions") or {})
        if can:
            await send({"type": "http.response.push", "path": "/style.css",
                        "headers": [(b"accept", b"text/css")]})
            await send({"type": "http.response.push", "path": "/app.js?v=1", "headers": []})
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"page push=%d" % can})
    elif path == "/push-many":
        n = int(scope["query_string"] or b"5")
        for i in range(n):
            await send({"type": "http.response.push", "path": "/style.css?n=%d" % i})
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"many"})
    elif path == "/style.css":
        seen = dict(scope["headers"])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/css"),
                                (b"x-seen-accept", seen.get(b"accept", b"-")),
                                (b"x-seen-method", scope["method"].encode()),
                                (b"x-seen-query", scope["query_string"] or b"-")]})
        await send({"type": "http.response.body", "body": CSS})
    elif path == "/app.js":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/javascript")]})
        await send({"type": "http.response.body", "body": JS})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": b"not found"})


def wsgi(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/hints":
        sent = environ["hornbeam.early_hint"](["</style.css>; rel=preload; as=style"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hinted %d" % sent]
    if path == "/push":
        push = environ.get("hornbeam.push")
        ok = push("/style.css", [("Accept", "text/css")]) if push else False
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"page push=%d" % ok]
    if path == "/style.css":
        start_response("200 OK", [("Content-Type", "text/css"),
                                  ("X-Seen-Accept", environ.get("HTTP_ACCEPT", "-")),
                                  ("X-Seen-Method", environ["REQUEST_METHOD"])])
        return [CSS]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
