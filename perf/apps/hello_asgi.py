"""Hello-world ASGI app used by perf/bench.py (uvicorn, hornbeam-uring asgi).

Same response as apps/hello_wsgi.py: 200, text/plain, Content-Length 13.
"""
from asgi_common import lifespan

BODY = b"Hello, World!"
START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
BODY_MSG = {"type": "http.response.body", "body": BODY}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] != "http":
        return
    await send(START)
    await send(BODY_MSG)


application = app
